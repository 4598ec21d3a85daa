# The simulated fleet: N hosts on this machine, each with its own address, its own sshd (key login as
# root, MaxStartups/MaxSessions as asked), its own home directory and added RTT, but with no dockerd:
# `docker` is a stand-in (test/lab/tools' sim_docker) that keeps the state a host would have (images,
# containers, their names, labels and status, kamal-proxy's routes and the calls it got) in the host's
# own files and answers after configurable latencies. It measures a deploy tool at fleet sizes that
# real dockerds cannot reach on this machine; the real-docker lab (lab.rb) stays what the tests trust.
#
#   lab up N --sim [--rtt MS] [--max-startups S] [--max-sessions M] [--latency pull=1.0,run=0.4,...]
#
# All hosts share one network namespace (one address each on its eth0; a sshd per address), one SSH
# host key and one client key. Each sshd runs the host's `sim-shell`, which sets HOME (the host's home,
# where `.kamal` and the stand-in's state live) and PATH (the stand-in first), logs the command to the
# host's transcript as the lab's wrapper does, and runs it.
require "fileutils"
require "json"
require "digest"
require_relative "lab" unless defined?(Lab::STATE) # lab.rb run as a command requires this file

module SimLab
  STATE = ENV.fetch("KAMAL_RS_SIM_DIR", File.join(Lab::STATE, "sim"))
  NS = "krsim"
  LINK = "krsim0"
  GATEWAY = "10.214.255.1"
  TAG = "kamal-rs-sim" # comment on every iptables rule the sim adds
  QUEUE = 1 # NFQUEUE number (the lab's latency daemon uses 0)
  REGISTRY = "registry.sim:5000"
  BIN = File.join(STATE, "bin")
  SSH_DIR = File.join(STATE, "ssh")
  HOST_KEY = File.join(SSH_DIR, "ssh_host_ed25519_key")
  KNOWN_HOSTS = File.join(SSH_DIR, "known_hosts")
  SSH_CONFIG = File.join(SSH_DIR, "config")
  SSHD_CONFIG = File.join(STATE, "sshd_config")
  REGISTRY_FILE = File.join(STATE, "registry.json")
  LATENCY_FILE = File.join(STATE, "latency.json")
  SHELL = File.join(BIN, "sim-shell")
  # Seconds each kind of docker work takes on a simulated host (sim_docker reads these names): a pull
  # of a new version (a few changed layers), of an image already there, `docker run` (create + start),
  # `docker stop` of an app that exits on TERM, the time from start to a passing health check, a
  # `docker exec`, a query (ps, inspect, images) and a small write (tag, rename, rm).
  LATENCY = { "pull" => 1.0, "pull_cached" => 0.1, "run" => 0.4, "stop" => 0.3, "health" => 1.0, "exec" => 0.05,
              "query" => 0.02, "write" => 0.03 }.freeze
  APP_VERSIONS = %w[v1 v2 unhealthy].freeze

  module_function

  def ip(index)
    "10.214.#{(index - 1) / 200}.#{10 + (index - 1) % 200}"
  end

  def host_dir(name)
    File.join(STATE, "hosts", name)
  end

  def up(count, rtt: 0, max_startups: nil, max_sessions: nil, latency: {})
    raise Lab::Error, "the lab needs root" unless Process.uid.zero?
    raise Lab::Error, "the simulated fleet holds at most 50000 hosts" unless (1..50_000).cover?(count)

    down(quiet: true)
    FileUtils.mkdir_p([ STATE, BIN, SSH_DIR ])
    state = { "count" => count, "rtt" => rtt, "pids" => {}, "sshd" => [], "started_at" => Time.now.to_f }
    save(state)
    Lab.build_tools
    Lab.ssh_keys # the client key, shared with the real lab
    install_files(latency, max_startups: max_startups, max_sessions: max_sessions)
    names = (1..count).map { |i| "h#{i}" }
    network(count)
    state["pids"]["holder"] = start_holder
    save(state)
    state["sshd"] = names.each_with_index.map { |name, i| start_sshd(state["pids"]["holder"], name, ip(i + 1)) }
    save(state)
    write_ssh_client_files(count)
    wait_for_sshds(count)
    state["pids"]["netem"] = start_latency(rtt) if rtt.positive?
    save(state)
    state
  rescue Exception
    down(quiet: true) unless ENV["KAMAL_RS_LAB_KEEP"]
    raise
  end

  def down(quiet: false)
    state = load
    Lab.stop_pid(state.dig("pids", "netem"))
    Lab.stop_pid(state.dig("pids", "holder"))
    # Every process in the namespace: the sshds, their sessions and whatever those started.
    if File.exist?("/run/netns/#{NS}")
      pids, = Open3.capture2("ip", "netns", "pids", NS)
      pids.split.each { |p| Process.kill("KILL", p.to_i) rescue nil }
      Lab.sh("ip", "netns", "del", NS, allow_failure: true)
    end
    Lab.sh("ip", "link", "del", LINK, allow_failure: true) if Lab.link?(LINK)
    remove_tagged_rules
    FileUtils.rm_rf(File.join(STATE, "hosts")) unless ENV["KAMAL_RS_LAB_KEEP"]
    FileUtils.rm_f(File.join(STATE, "sim.json"))
    puts "sim down" unless quiet
  end

  def up?
    !load.empty?
  end

  def hosts
    (1..load.fetch("count", 0)).map { |i| ip(i) }
  end

  def name_of(ip)
    a, b = ip.split(".").last(2).map(&:to_i)
    "h#{a * 200 + b - 9}"
  end

  # The stand-in's state on host `ip` (images, containers, networks, kamal-proxy's routes and calls).
  def state_of(ip)
    JSON.parse(File.read(File.join(host_dir(name_of(ip)), "home", ".sim-docker", "state.json")))
  rescue Errno::ENOENT
    {}
  end

  def transcript(ip)
    Lab.read_transcript(File.join(host_dir(name_of(ip)), "transcript.log"))
  end

  def reset_transcripts
    hosts.each { |ip| File.write(File.join(host_dir(name_of(ip)), "transcript.log"), "") }
  end

  # FAULTS a simulated host can show: unreachable from the start (its sshd stopped), every pull
  # failing, no new container ever healthy, its connection lost as the boot's `docker run` starts.
  FAULTS = %w[unreachable pull unhealthy lost].freeze

  def fail(ip, kind)
    raise ArgumentError, "a simulated fault is one of #{FAULTS.join(", ")}, not #{kind}" unless FAULTS.include?(kind)

    if kind == "unreachable"
      index = hosts.index(ip) or raise ArgumentError, "#{ip} is not a simulated host"
      Lab.stop_pid(load["sshd"][index])
    else
      dir = File.join(host_dir(name_of(ip)), "home", ".sim-docker")
      FileUtils.mkdir_p(dir)
      File.write(File.join(dir, "fault"), "#{kind}\n")
    end
  end

  # The host answers again, with no fault.
  def heal(ip)
    FileUtils.rm_f(File.join(host_dir(name_of(ip)), "home", ".sim-docker", "fault"))
    index = hosts.index(ip)
    state = load
    return if index.nil? || Lab.alive?(state["sshd"][index])

    state["sshd"][index] = start_sshd(state["pids"]["holder"], name_of(ip), ip)
    save(state)
    wait_for_sshds_at([ ip ])
  end

  # `count` hosts picked at random (never the first, which holds the deploy lock) with `rng`: with no
  # `kind`, the first half unreachable and the rest never healthy; else all failing as `kind`.
  def pick_failing(count, rng, kind: nil)
    failing = hosts.drop(1).sample(count, random: rng)
    failing.each_with_index { |ip, i| fail(ip, kind || (i < (count + 1) / 2 ? "unreachable" : "unhealthy")) }
    failing
  end

  # A new tag in the simulated registry: `tag` as a new image (its own ID) of the app, as a release
  # pushes one; healthy unless `healthy: false`.
  def push(tag, healthy: true)
    registry = JSON.parse(File.read(REGISTRY_FILE))
    registry["#{REGISTRY}/app:#{tag}"] = app_image(tag, healthy)
    File.write("#{REGISTRY_FILE}.tmp", JSON.pretty_generate(registry))
    File.rename("#{REGISTRY_FILE}.tmp", REGISTRY_FILE)
    tag
  end

  # The app's config/deploy.yml for the simulated hosts `ips`.
  def app_config(ips, max_concurrent_starts: nil)
    Lab.app_config(ips, max_concurrent_starts: max_concurrent_starts, registry: REGISTRY, ssh_config: SSH_CONFIG)
  end

  # Shell exports for a command line to reach the simulated hosts.
  def env_exports
    { "KAMAL_RS_SIM_SSH_CONFIG" => SSH_CONFIG, "KAMAL_RS_SIM_HOSTS" => hosts.join(",") }
  end

  # ---- bring-up pieces ---------------------------------------------------------------------------

  def install_files(latency, max_startups:, max_sessions:)
    FileUtils.mkdir_p("/run/sshd") # sshd's privilege separation directory
    FileUtils.cp(File.join(Lab::TOOLS_BIN, "sim_docker"), File.join(BIN, "docker"))
    File.write(LATENCY_FILE, JSON.pretty_generate(LATENCY.merge(latency)))
    images = APP_VERSIONS.to_h { |v| [ "#{REGISTRY}/app:#{v}", app_image(v, v != "unhealthy") ] }
    images["basecamp/kamal-proxy:v0.9.2"] = { "id" => image_id("kamal-proxy:v0.9.2"), "labels" => {}, "healthy" => true }
    File.write(REGISTRY_FILE, JSON.pretty_generate(images))
    unless File.exist?(HOST_KEY)
      Lab.sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kamal-rs-sim", "-f", HOST_KEY)
    end
    FileUtils.cp("#{Lab::KEY}.pub", File.join(SSH_DIR, "authorized_keys"))
    write_shell
    File.write(SSHD_CONFIG, <<~CONF)
      HostKey #{HOST_KEY}
      PidFile none
      PermitRootLogin prohibit-password
      PasswordAuthentication no
      KbdInteractiveAuthentication no
      UsePAM no
      StrictModes no
      UseDNS no
      LogLevel ERROR
      AuthorizedKeysFile #{File.join(SSH_DIR, "authorized_keys")}
      Subsystem sftp /usr/lib/openssh/sftp-server
      #{max_startups ? "MaxStartups #{max_startups}" : ""}
      #{max_sessions ? "MaxSessions #{max_sessions}" : ""}
    CONF
  end

  def app_image(tag, healthy)
    { "id" => image_id("app:#{tag}"), "labels" => { "service" => "app" }, "healthy" => healthy }
  end

  def image_id(seed)
    "sha256:#{Digest::SHA256.hexdigest(seed)}"
  end

  # The ForceCommand of every sshd, given its host's name: the host's own HOME and PATH, the command
  # logged to the host's transcript (time, client, pid, command; then its exit) as lab.rb's wrapper does.
  def write_shell
    File.write(SHELL, <<~'SH'.gsub("STATE", STATE))
      #!/bin/bash
      dir=STATE/hosts/$1
      export HOME=$dir/home PATH=STATE/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
      export SIM_REGISTRY=STATE/registry.json SIM_LATENCY=STATE/latency.json
      cd "$HOME" || exit 1
      set -- $SSH_CLIENT
      client="$1:$2"
      printf '%s %s %s %s\n' "$EPOCHREALTIME" "$client" "$$" "${SSH_ORIGINAL_COMMAND//$'\n'/\\n}" >> "$dir/transcript.log"
      case "$SSH_ORIGINAL_COMMAND" in
        "") exec /bin/bash -l ;;
        sftp|internal-sftp) exec /usr/lib/openssh/sftp-server ;;
      esac
      /bin/bash -c "$SSH_ORIGINAL_COMMAND"
      rc=$?
      printf '%s %s %s #exit %s\n' "$EPOCHREALTIME" "$client" "$$" "$rc" >> "$dir/transcript.log"
      exit $rc
    SH
    File.chmod(0o755, SHELL)
  end

  # One namespace for every host: a veth pair, this machine's end GATEWAY, the namespace's end
  # holding each host's address.
  def network(count)
    Lab.sh("ip", "netns", "add", NS)
    Lab.sh("ip", "link", "add", LINK, "type", "veth", "peer", "name", "eth0", "netns", NS)
    Lab.sh("ip", "addr", "add", "#{GATEWAY}/16", "dev", LINK)
    Lab.sh("ip", "link", "set", LINK, "up")
    batch = File.join(STATE, "addresses.batch")
    File.write(batch, (1..count).map { |i| "addr add #{ip(i)}/16 dev eth0\n" }.join + "link set eth0 up\nlink set lo up\n")
    Lab.sh("ip", "-n", NS, "-batch", batch)
  end

  # A process holding the namespaces every sshd runs in: the fleet's network namespace, and a mount
  # namespace where /root is an empty directory. sshd starts the ForceCommand with root's login shell,
  # which (Debian's bash, under sshd) reads ~/.bashrc: this machine's own would run in every session.
  def start_holder
    root = File.join(STATE, "root")
    FileUtils.mkdir_p(root)
    pid = Process.spawn("nsenter", "--net=/run/netns/#{NS}", "unshare", "--mount", "--propagation", "private", "sh", "-c",
                        "mount --bind #{root} /root && exec sleep infinity", pgroup: true, out: File::NULL, err: File.join(STATE, "holder.log"))
    Process.detach(pid)
    Lab.wait_until(what: "the simulated fleet's namespace holder") { File.read("/proc/#{pid}/comm").strip == "sleep" rescue false }
    pid
  end

  def start_sshd(holder, name, address)
    dir = host_dir(name)
    FileUtils.mkdir_p(File.join(dir, "home"))
    FileUtils.touch(File.join(dir, "transcript.log"))
    Lab.spawn_logged([ "nsenter", "-t", holder.to_s, "-m", "-n", "/usr/sbin/sshd", "-D", "-f", SSHD_CONFIG,
                       "-o", "ListenAddress=#{address}:22", "-o", "ForceCommand=#{SHELL} #{name}",
                       "-E", File.join(dir, "sshd.log") ], File::NULL)
  end

  def wait_for_sshds(count)
    wait_for_sshds_at((1..count).map { |i| ip(i) })
  end

  def wait_for_sshds_at(pending)
    count = pending.size
    Lab.wait_until(what: "#{count} sshds", timeout: 30 + count / 20) do
      pending.reject! { |address| Socket.tcp(address, 22, connect_timeout: 0.5).close || true rescue false }
      pending.empty?
    end
  end

  def write_ssh_client_files(count)
    key = File.read("#{HOST_KEY}.pub").split[0, 2].join(" ")
    File.write(KNOWN_HOSTS, (1..count).map { |i| "#{ip(i)} #{key}\n" }.join)
    File.write(SSH_CONFIG, <<~CONF)
      Host 10.214.*
        User root
        IdentityFile #{Lab::KEY}
        IdentitiesOnly yes
        UserKnownHostsFile #{KNOWN_HOSTS}
        StrictHostKeyChecking yes
        ConnectTimeout 10
    CONF
  end

  # RTT as in lab.rb: half on the way in (the namespace's PREROUTING), half on the way back (this
  # machine's INPUT from the veth), on its own queue.
  def start_latency(rtt)
    rule = [ "-j", "NFQUEUE", "--queue-num", QUEUE.to_s, "--queue-bypass", "-m", "comment", "--comment", TAG ]
    Lab.sh("ip", "netns", "exec", NS, "iptables", "-t", "mangle", "-A", "PREROUTING", "-i", "eth0", *rule)
    Lab.sh("iptables", "-t", "mangle", "-A", "INPUT", "-i", LINK, *rule)
    log = File.join(STATE, "netem.log")
    pid = Process.spawn({ "LAB_NETEM_QUEUE" => QUEUE.to_s }, File.join(Lab::TOOLS_BIN, "lab-netem"), (rtt / 2.0).round.to_s,
                        "self", "/run/netns/#{NS}", pgroup: true, in: File::NULL, out: log, err: [ :child, :out ])
    Process.detach(pid)
    Lab.wait_until(what: "lab-netem (#{log})") do
      raise Lab::Error, "lab-netem failed: #{File.read(log)}" unless Lab.alive?(pid)

      File.read(log).include?("ready")
    end
    pid
  end

  def remove_tagged_rules
    out, = Open3.capture2("iptables", "-t", "mangle", "-S")
    out.lines.grep(/--comment "?#{TAG}"?/).each do |rule|
      Lab.sh("iptables", "-t", "mangle", "-D", *rule.split.drop(1).map { |a| a.delete('"') }, allow_failure: true)
    end
  end

  def load
    JSON.parse(File.read(File.join(STATE, "sim.json")))
  rescue Errno::ENOENT
    {}
  end

  def save(state)
    File.write(File.join(STATE, "sim.json"), JSON.generate(state))
  end
end
