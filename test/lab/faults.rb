require_relative "lab"

# Faults to inject into the lab's hosts, and their undoing: a host that stops answering, sshd or dockerd
# killed, the registry stopped or black-holed. Each has an inverse, so a test can end with the lab whole.
module Lab
  module Faults
    module_function

    RULE = "-m comment --comment #{TAG}-fault".freeze

    # Every packet to or from the host is dropped, inside its namespace: it stops answering.
    def partition(host)
      Lab.exec_in(host, "iptables -I INPUT -j DROP #{RULE} && iptables -I OUTPUT -j DROP #{RULE}")
    end

    # Only the registry's packets are dropped: a pull hangs.
    def blackhole_registry(host)
      Lab.exec_in(host, "iptables -I OUTPUT -d #{GATEWAY} -p tcp --dport 5000 -j DROP #{RULE}")
    end

    def heal(host)
      Lab.exec_in(host, "for chain in INPUT OUTPUT; do while iptables -S $chain | grep -q -- '#{TAG}-fault'; do " \
                        "iptables -S $chain | grep -- '#{TAG}-fault' | head -1 | sed 's/^-A/-D/' | xargs iptables; done; done")
    end

    # The host's sshd and every session it serves (the master connections to it drop).
    def kill_sshd(host)
      h = Lab.find_host(host)
      system("pkill", "-KILL", "-P", h["sshd"].to_s)
      Lab.stop_pid(h["sshd"])
    end

    def start_sshd(host)
      h = Lab.find_host(host)
      return if Lab.alive?(h["sshd"])

      pid = Lab.start_sshd(h["holder"], h["dir"])
      Lab.update_state { |s| s["hosts"].find { |x| x["name"] == h["name"] }["sshd"] = pid }
      Lab.wait_for_port(h["ip"], 22, what: "sshd on #{h["name"]}")
    end

    # dockerd stopped (its containers stop with it; `unless-stopped` ones come back when it starts).
    def stop_dockerd(host)
      Lab.stop_pid(Lab.find_host(host)["dockerd"], wait: 20)
    end

    def start_dockerd(host)
      h = Lab.find_host(host)
      return if Lab.alive?(h["dockerd"])

      pid = Lab.start_dockerd(h["holder"], h["dir"], File.join(h["dir"], "docker"), "#{NS_PREFIX}#{h["name"]}")
      Lab.update_state { |s| s["hosts"].find { |x| x["name"] == h["name"] }["dockerd"] = pid }
      Lab.wait_for_docker(File.join(h["dir"], "run", "docker.sock"))
    end

    def stop_registry
      Lab.stop_pid(Lab.load.dig("pids", "registry"))
    end

    def start_registry
      return if Lab.alive?(Lab.load.dig("pids", "registry"))

      pid = Lab.start_registry
      Lab.update_state { |s| s["pids"]["registry"] = pid }
    end

    # Undoes every fault: the lab as it was.
    def heal_all
      start_registry
      Lab.hosts.each do |h|
        heal(h["name"])
        start_sshd(h["name"])
        start_dockerd(h["name"])
      end
    end
  end
end
