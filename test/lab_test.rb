require "test_helper"
require_relative "lab/lab"

# The test lab itself, on 3 hosts: real sshd and dockerd per host, the registry, the app images and the
# lab's kamal-proxy (the real v0.9.2), transcripts, added latency, and a teardown that leaves nothing behind.
class LabTest < Minitest::Test

  SSH = [ "ssh", "-F", Lab::SSH_CONFIG, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5" ].freeze

  # Three hosts without added latency, whatever the test before left (one takes the lab down, one brings
  # it up with two hosts and latency): brought up when it is not so.
  def setup
    flunk "the lab tests need root (they make network namespaces and run dockerd): run them as root" unless Process.uid.zero?
    state = Lab.load
    pids = state.fetch("hosts", []).flat_map { |h| h.values_at("sshd", "dockerd") }
    Lab.up(3) unless state.fetch("hosts", []).size == 3 && state["rtt"].to_i.zero? && pids.all? { |pid| Lab.alive?(pid) }
  end

  def test_1_ssh_reaches_each_host_with_its_own_namespaces
    Lab.hosts.each do |h|
      out = ssh(h["ip"], "hostname; echo $HOME; test -S /var/run/docker.sock && echo own-docker")
      assert_equal "#{h["name"]}\n/root\nown-docker\n", out
    end
    refute_equal ssh("10.213.0.11", "docker info --format '{{.ID}}'"), ssh("10.213.0.12", "docker info --format '{{.ID}}'")
  end

  def test_2_app_from_the_registry_answers_with_its_version
    Lab.hosts.each_with_index do |h, i|
      version = i.even? ? "v1" : "v2"
      ssh(h["ip"], "docker rm -f probe >/dev/null 2>&1; docker run -d --name probe -p 8080:80 #{Lab::REGISTRY}/app:#{version} && " \
                   "docker image inspect --format '{{.Config.Labels.service}}' #{Lab::REGISTRY}/app:#{version}")
      assert_equal "app #{version}\n", http_get(h["ip"], 8080, "/")
      assert_equal "200", http_status(h["ip"], 8080, "/up")
      ssh(h["ip"], "docker rm -f probe")
    end
  end

  def test_3_kamal_proxy_switches_only_to_a_healthy_target
    ip = Lab.hosts.first["ip"]
    # From a clean host, whichever test ran on it before.
    ssh(ip, "docker ps -aq | xargs -r docker rm -f >/dev/null; docker network rm kamal >/dev/null 2>&1; " \
            "docker volume rm kamal-proxy-config >/dev/null 2>&1; true")
    ssh(ip, "docker network create kamal && docker run --name kamal-proxy --network kamal --detach --restart unless-stopped " \
            "--volume kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy --publish 80:80 --publish 443:443 " \
            "--log-opt max-size=10m basecamp/kamal-proxy:v0.9.2")
    deploy = ->(name, image, timeout: "5s") do
      cid = ssh(ip, "docker run -d --name #{name} --network kamal #{Lab::REGISTRY}/app:#{image} 2>/dev/null | cut -c1-12").strip
      [ cid, "docker exec kamal-proxy kamal-proxy deploy app-web --target=\"#{cid}:80\" --deploy-timeout=\"#{timeout}\" " \
             "--drain-timeout=\"30s\" --buffer-requests --buffer-responses --log-request-header=\"Cache-Control\"" ]
    end

    _, cmd = deploy.("app-web-v1", "v1")
    ssh(ip, cmd)
    assert_equal "app v1\n", http_get(ip, 80, "/")
    _, cmd = deploy.("app-web-v2", "v2")
    ssh(ip, cmd)
    assert_equal "app v2\n", http_get(ip, 80, "/")

    _, cmd = deploy.("app-web-bad", "unhealthy", timeout: "2s")
    _, status = ssh_status(ip, cmd)
    refute_equal 0, status, "deploying an unhealthy target fails"
    assert_equal "app v2\n", http_get(ip, 80, "/"), "traffic stays on the healthy version"

    # A target that turns healthy while the deploy waits: traffic moves only then.
    cid, cmd = deploy.("app-web-late", "unhealthy", timeout: "20s")
    waiting = Thread.new { ssh_status(ip, cmd) }
    # Once kamal-proxy has the deploy (it logs it; the stand-in writes it down), it is health-checking.
    Lab.wait_until(what: "kamal-proxy to start deploying #{cid}") do
      ssh_status(ip, "docker logs kamal-proxy 2>&1 | grep '\"Deploying\".*#{cid}' || " \
                     "docker exec kamal-proxy grep #{cid} /home/kamal-proxy/.config/kamal-proxy/commands.log").last.zero?
    end
    assert_equal "app v2\n", http_get(ip, 80, "/"), "no switch before the target is healthy"
    ssh(ip, "docker exec #{cid} sh -c 'echo ok > /www/up'")
    assert_equal 0, waiting.value[1]
    assert_equal "app unhealthy\n", http_get(ip, 80, "/")
    assert_includes proxy_list(ip), [ "app-web", "*", "/", "#{cid}:80", "running", "no" ]
    assert_equal Lab.real_kamal_proxy?, ssh_status(ip, "docker exec kamal-proxy kamal-proxy --help").first.include?("rollout"),
                 "the lab runs the real kamal-proxy v0.9.2 where script/install-kamal-proxy built it"
  end

  def test_4_transcript_records_each_command_with_its_client
    Lab.reset_transcripts
    ip = Lab.hosts.last["ip"]
    ssh(ip, "echo one")
    ssh(ip, "echo two\necho three")
    lines = Lab.transcript(ip)
    assert_equal [ "echo one", "echo two\necho three" ], lines.map { |l| l[:command] }
    assert(lines.all? { |l| l[:client].start_with?("#{Lab::GATEWAY}:") })
    assert_equal 2, lines.map { |l| l[:client] }.uniq.size, "two ssh processes, two connections"
    assert_operator lines[0][:time], :<=, lines[1][:time]
  end

  def test_5_added_latency_slows_a_new_connection_by_about_the_rtt
    ip = Lab.hosts.first["ip"]
    plain = connect_time(ip)
    Lab.down(quiet: true)
    Lab.up(2, rtt: 50)
    delayed = connect_time(ip)
    assert_operator delayed, :>=, 0.045, "a TCP connect should take at least ~50 ms more (was #{(plain * 1000).round(1)} ms)"
    assert_equal "h1\n", ssh(ip, "hostname"), "ssh still works through the delay"
  end

  def test_6_down_leaves_nothing_behind
    state = JSON.parse(File.read(File.join(Lab::STATE, "lab.json")))
    pids = state["hosts"].flat_map { |h| h.values_at("holder", "sshd", "dockerd") } + state["pids"].values
    Lab.down(quiet: true)
    Lab.down(quiet: true) # twice is fine
    assert_empty `ip netns list`.lines.grep(/#{Lab::NS_PREFIX}/)
    assert_empty pids.select { |pid| Lab.alive?(pid) }
    assert_empty File.read("/proc/self/mounts").lines.grep(/#{Lab::STATE}/)
    assert_empty `iptables-save 2>/dev/null`.lines.grep(/#{Lab::TAG}/)
    refute Lab.link?(Lab::BRIDGE)
    refute File.exist?(File.join(Lab::STATE, "hosts"))
  end

  private
    def ssh(ip, command)
      out, status = ssh_status(ip, command)
      assert_equal 0, status, "ssh #{ip} #{command} failed:\n#{out}"
      out
    end

    def ssh_status(ip, command)
      out, status = Open3.capture2e(*SSH, ip, command)
      [ out, status.exitstatus ]
    end

    def http_get(ip, port, path)
      out, = Open3.capture2("curl", "-s", "--max-time", "5", "http://#{ip}:#{port}#{path}")
      out
    end

    def http_status(ip, port, path)
      out, = Open3.capture2("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://#{ip}:#{port}#{path}")
      out
    end

    # `kamal-proxy list`'s rows, by column (the real one aligns and colours them, the stand-in tabs them).
    def proxy_list(ip)
      ssh(ip, "docker exec kamal-proxy kamal-proxy list").gsub(/\e\[[\d;]*m/, "").lines.drop(1).map(&:split)
    end

    def connect_time(ip)
      times = 5.times.map do
        t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        Socket.tcp(ip, 22, connect_timeout: 5).close
        Process.clock_gettime(Process::CLOCK_MONOTONIC) - t
      end
      times.min
    end
end
