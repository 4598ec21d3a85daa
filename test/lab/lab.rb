# The test lab: N real servers on this machine, each a network namespace + mount namespace with its own
# sshd (key login as root) and its own dockerd, a local registry they all pull from, and test images
# (an app in two healthy versions and an unhealthy one, and kamal-proxy: the real v0.9.2 that
# script/install-kamal-proxy builds, else a stand-in). Needs root.
#
#   lab up N [--rtt MS] [--builder] | down | status | exec HOST CMD... | transcript HOST | reset-transcripts | env
#   lab up N --sim [--rtt MS] ...        (a simulated fleet: sim.rb)
#
# Everything the lab starts is recorded by PID in STATE/lab.json; `down` stops exactly that, removes the
# namespaces, the bridge and the iptables rules tagged "kamal-rs-lab", and is safe to run twice.
require "fileutils"
require "json"
require "open3"
require "socket"
require "digest"
require "timeout"

module Lab
  STATE = ENV.fetch("KAMAL_RS_LAB_DIR", "/var/lib/kamal-rs-lab")
  CACHE = ENV.fetch("KAMAL_RS_LAB_CACHE", "/var/lib/kamal-rs-lab-cache")
  BRIDGE = "krlab0"
  NET = "10.213.0"
  GATEWAY = "#{NET}.1"
  REGISTRY = "#{GATEWAY}:5000"
  BUILDER_IP = "#{NET}.2"
  BUILDER_SOCKET = File.join(STATE, "builder", "run", "docker.sock")
  TAG = "kamal-rs-lab" # comment on every iptables rule the lab adds
  NS_PREFIX = "krlab-"
  TOOLS = File.join(__dir__, "tools")
  TOOLS_BIN = File.join(TOOLS, "target", "x86_64-unknown-linux-gnu", "release")
  # The real kamal-proxy v0.9.2 (script/install-kamal-proxy builds it from ../shared/kamal-proxy).
  REAL_KAMAL_PROXY = File.join(CACHE, "kamal-proxy-v0.9.2")
  SSH_DIR = File.join(STATE, "ssh")
  KEY = File.join(SSH_DIR, "id_ed25519")
  KNOWN_HOSTS = File.join(SSH_DIR, "known_hosts")
  SSH_CONFIG = File.join(SSH_DIR, "config")
  DAEMON_JSON = File.join(STATE, "daemon.json")
  PACKAGES = %w[openssh-server docker.io docker-registry busybox-static iproute2 iptables].freeze

  # The images every lab serves from its registry. A new stand-in is one entry here plus its rootfs.
  APP_SERVICE = "app"
  IMAGES = {
    "#{APP_SERVICE}:v1" => { kind: :app, version: "v1", healthy: true },
    "#{APP_SERVICE}:v2" => { kind: :app, version: "v2", healthy: true },
    "#{APP_SERVICE}:unhealthy" => { kind: :app, version: "unhealthy", healthy: false },
    "basecamp/kamal-proxy:v0.9.2" => { kind: :kamal_proxy },
    # What Kamal 1.9.3 boots by default (Docker Hub's `traefik`, reached through the registry mirror).
    "library/traefik:v2.11" => { kind: :traefik },
    "library/busybox:latest" => { kind: :busybox }
  }.freeze

  Host = Struct.new(:index, keyword_init: true) do
    def name = "h#{index}"
    def ip = "#{NET}.#{10 + index}"
    def ns = "#{NS_PREFIX}#{name}"
    def veth = "krl-#{name}"
    def dir = File.join(STATE, "hosts", name)
    def transcript = File.join(dir, "transcript.log")
    def docker_socket = File.join(dir, "run", "docker.sock")
  end

  class Error < StandardError; end

  module_function

  # ---- commands --------------------------------------------------------------------------------

  def up(count, rtt: 0, builder: false)
    raise Error, "the lab needs root" unless Process.uid.zero?
    check_packages
    down(quiet: true)
    FileUtils.mkdir_p([ STATE, CACHE, SSH_DIR ])
    state = { "hosts" => [], "pids" => {}, "rtt" => rtt, "started_at" => Time.now.to_f }
    save(state)
    build_tools
    ssh_keys
    # Shared by every dockerd: written once, before any of them starts reading it.
    File.write(DAEMON_JSON, JSON.generate("insecure-registries" => [ REGISTRY ], "registry-mirrors" => [ "http://#{REGISTRY}" ]))
    network
    state["pids"]["registry"] = start_registry
    save(state)
    ensure_images(state)
    hosts = (1..count).map { |i| Host.new(index: i) }
    threads = hosts.map { |h| Thread.new { start_host(h) } }
    state["hosts"] = threads.map(&:value)
    save(state)
    write_ssh_client_files(hosts)
    state["pids"]["netem"] = start_latency(hosts, rtt) if rtt.positive?
    start_builder(state) if builder
    save(state)
    state
  rescue Exception
    down(quiet: true) unless ENV["KAMAL_RS_LAB_KEEP"]
    raise
  end

  def down(quiet: false)
    state = load
    stop_pid(state.dig("pids", "netem"))
    (state["hosts"] || []).map { |h| Thread.new { stop_host(h) } }.each(&:join)
    # Namespaces of ours left by an interrupted run (no state file): only our prefix, only their processes.
    stale_namespaces.each { |ns| kill_namespace(ns) }
    stop_pid(state.dig("pids", "builder_dockerd"), wait: 15)
    stop_pid(state.dig("pids", "builder_holder"))
    kill_namespace("#{NS_PREFIX}builder") if File.exist?("/run/netns/#{NS_PREFIX}builder")
    stop_pid(state.dig("pids", "registry"))
    sh("ip", "link", "del", BRIDGE, allow_failure: true) if link?(BRIDGE)
    remove_tagged_rules
    FileUtils.rm_rf(File.join(STATE, "hosts")) unless ENV["KAMAL_RS_LAB_KEEP"]
    FileUtils.rm_rf(File.join(STATE, "builder", "run"))
    FileUtils.rm_f(File.join(STATE, "lab.json"))
    puts "lab down" unless quiet
  end

  def status
    state = load
    return puts("lab is down") if state["hosts"].nil? || state["hosts"].empty?

    puts "registry #{REGISTRY} pid #{state.dig("pids", "registry")} #{alive?(state.dig("pids", "registry")) ? "up" : "DOWN"}"
    puts "rtt #{state["rtt"]} ms#{state.dig("pids", "netem") ? " (netem pid #{state.dig("pids", "netem")})" : ""}"
    state["hosts"].each do |h|
      procs = %w[holder sshd dockerd].map { |k| "#{k}=#{alive?(h[k]) ? "up" : "DOWN"}" }.join(" ")
      puts "#{h["name"]} #{h["ip"]} #{procs}"
    end
  end

  # Runs CMD inside a host's namespaces (its own /run, /root, /tmp and docker).
  def exec_in(host, *cmd, capture: false)
    h = find_host(host)
    full = [ "nsenter", "-t", h["holder"].to_s, "-m", "-u", "-n", "env", "HOME=/root", "sh", "-c", cmd.join(" ") ]
    if capture
      out, status = Open3.capture2e(*full)
      [ out, status.exitstatus ]
    else
      system(*full)
      $?.exitstatus
    end
  end

  # Every command the host's sshd ran: [{time:, ended:, status:, client:, command:}], by start time.
  def transcript(host)
    read_transcript(Host.new(index: find_host(host)["index"]).transcript)
  end

  # A transcript file as written by a host's wrapper (lab.rb's or the simulated fleet's).
  def read_transcript(path)
    return [] unless File.exist?(path)

    started = {}
    entries = []
    File.readlines(path, chomp: true).each do |line|
      time, client, pid, command = line.split(" ", 4)
      if command.to_s.start_with?("#exit ")
        entry = started.delete(pid) and (entry[:ended] = time.to_f; entry[:status] = command.split.last.to_i)
      else
        entry = { time: time.to_f, ended: nil, status: nil, client: client, command: command.to_s.gsub("\\n", "\n") }
        started[pid] = entry
        entries << entry
      end
    end
    entries
  end

  # The lab app's config/deploy.yml for `hosts` (one web role, the lab registry, the lab's SSH files);
  # `proxy`: a jump host for `ssh.proxy`; `max_concurrent_starts`: sshkit's key. The simulated fleet
  # passes its own `registry` and `ssh_config`.
  def app_config(hosts, proxy: nil, max_concurrent_starts: nil, registry: REGISTRY, ssh_config: SSH_CONFIG)
    yaml = <<~YAML
      service: app
      image: app
      servers:
        web:
      #{hosts.map { |h| "    - #{h}" }.join("\n")}
      registry:
        server: #{registry}
        username: lab
        password: lab
      builder:
        arch: amd64
      ssh:
        keys: [ #{KEY} ]
        config: #{ssh_config}
    YAML
    yaml += "  proxy: root@#{proxy}\n" if proxy
    yaml += "sshkit:\n  max_concurrent_starts: #{max_concurrent_starts}\n" if max_concurrent_starts
    yaml
  end

  # Makes `bastion` (an IP) the fleet's only way in: its sshd drops connections still authenticating
  # beyond `max_startups` (sshd's MaxStartups), and every other host refuses SSH from this machine.
  def make_bastion(bastion, max_startups:)
    host = hosts.find { |h| h["ip"] == bastion } or raise "no lab host #{bastion}"
    sshd_config = File.join(host["dir"], "sshd_config")
    File.write(sshd_config, File.read(sshd_config) + "MaxStartups #{max_startups}\n")
    sh("pkill", "-HUP", "-f", "sshd -D -f #{sshd_config}")
    hosts.each do |h|
      next if h["ip"] == bastion
      exec_in(h["name"], "iptables -I INPUT -s #{GATEWAY} -p tcp --dport 22 -j REJECT")
    end
  end

  def reset_transcripts
    (load["hosts"] || []).each { |h| File.write(File.join(h["dir"], "transcript.log"), "") }
  end

  def hosts
    load["hosts"] || []
  end

  # Shell exports a test or script needs to reach the lab.
  def env_exports
    { "KAMAL_RS_LAB_KEY" => KEY, "KAMAL_RS_LAB_KNOWN_HOSTS" => KNOWN_HOSTS, "KAMAL_RS_LAB_SSH_CONFIG" => SSH_CONFIG,
      "KAMAL_RS_LAB_REGISTRY" => REGISTRY, "KAMAL_RS_LAB_HOSTS" => hosts.map { |h| h["ip"] }.join(",") }
  end

  # ---- bring-up pieces ---------------------------------------------------------------------------

  def check_packages
    missing = { "sshd" => "/usr/sbin/sshd", "dockerd" => "/usr/sbin/dockerd", "docker-registry" => "/usr/bin/docker-registry",
                "busybox" => "/bin/busybox", "iptables" => "/usr/sbin/iptables", "nsenter" => "/usr/bin/nsenter" }
      .reject { |_, path| File.executable?(path) }
    return if missing.empty?

    raise Error, "missing #{missing.keys.join(", ")}: apt-get install #{PACKAGES.join(" ")}"
  end

  def build_tools
    env = { "RUSTFLAGS" => "-C target-feature=+crt-static" }
    sh(env, "cargo", "build", "--quiet", "--release", "--locked", "--target", "x86_64-unknown-linux-gnu", chdir: TOOLS)
  end

  def ssh_keys
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kamal-rs-lab", "-f", KEY) unless File.exist?(KEY)
  end

  def network
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", "#{GATEWAY}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    # br_netfilter sends bridged frames through FORWARD, whose policy may be DROP (a root dockerd sets it).
    sh("iptables", "-I", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT", "-m", "comment", "--comment", TAG)
  end

  def start_registry
    dir = File.join(STATE, "registry")
    FileUtils.mkdir_p([ dir, File.join(CACHE, "registry") ])
    config = File.join(dir, "config.yml")
    File.write(config, <<~YAML)
      version: 0.1
      log: { level: error, accesslog: { disabled: true } }
      storage:
        filesystem: { rootdirectory: #{File.join(CACHE, "registry")} }
        delete: { enabled: true }
      http: { addr: "#{REGISTRY}" }
    YAML
    pid = spawn_logged([ "docker-registry", "serve", config ], File.join(dir, "registry.log"))
    wait_for_port(GATEWAY, 5000, what: "registry")
    pid
  end

  # Builds the test images with a dockerd in a namespace of its own (a dockerd in the root namespace
  # would rewrite the machine's iptables) and pushes them, unless the registry already has this build.
  def ensure_images(state)
    stamp = Digest::SHA256.hexdigest([ IMAGES.to_a.inspect, File.binread(kamal_proxy_binary),
                                       File.binread(File.join(TOOLS_BIN, "traefik")),
                                       File.read(__FILE__)[/^  def build_rootfs_tar\b.*?^  end$/m] ].join)
    stamp_file = File.join(CACHE, "images.stamp")
    return if File.exist?(stamp_file) && File.read(stamp_file) == stamp && registry_has_images?

    build_images(state)
    File.write(stamp_file, stamp)
  end

  def build_images(state)
    socket = start_builder(state)
    IMAGES.each do |name, spec|
      dir = File.join(STATE, "builder")
      tar = File.join(dir, "#{name.tr("/:", "__")}.tar")
      build_rootfs_tar(spec, tar, File.join(dir, "rootfs"))
      changes = image_changes(spec).flat_map { |c| [ "--change", c ] }
      sh("docker", "-H", "unix://#{socket}", "import", *changes, tar, "#{REGISTRY}/#{name}")
      sh("docker", "-H", "unix://#{socket}", "push", "#{REGISTRY}/#{name}")
    end
  ensure
    stop_builder(state)
  end

  # The builder: a dockerd in a namespace of its own on the lab's bridge (it reaches the registry as
  # the hosts do). With `lab up N --builder` it stays up, as the local Docker of a build:
  # DOCKER_HOST=unix://#{BUILDER_SOCKET}.
  def start_builder(state)
    dir = File.join(STATE, "builder")
    FileUtils.rm_rf(File.join(dir, "run"))
    FileUtils.mkdir_p(%w[run root tmp rootfs cgroup].map { |d| File.join(dir, d) })
    ns = "#{NS_PREFIX}builder"
    sh("ip", "netns", "del", ns, allow_failure: true)
    sh("ip", "link", "del", "krl-builder", allow_failure: true) if link?("krl-builder")
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", "krl-builder", "type", "veth", "peer", "name", "eth0", "netns", ns)
    sh("ip", "link", "set", "krl-builder", "master", BRIDGE, "up")
    sh("ip", "-n", ns, "addr", "add", "#{BUILDER_IP}/24", "dev", "eth0")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    holder = start_holder(ns, dir, "builder")
    state["pids"]["builder_holder"] = holder
    docker_root = File.join(CACHE, "builder-docker")
    state["pids"]["builder_dockerd"] = start_dockerd(holder, dir, docker_root, "krlab-builder")
    save(state)
    wait_for_docker(BUILDER_SOCKET)
    BUILDER_SOCKET
  end

  def stop_builder(state)
    stop_pid(state["pids"].delete("builder_dockerd"), wait: 15)
    stop_pid(state["pids"].delete("builder_holder"))
    kill_namespace("#{NS_PREFIX}builder")
    save(state)
  end

  # The real kamal-proxy when script/install-kamal-proxy built it, else the stand-in (test/lab/tools).
  def kamal_proxy_binary
    File.executable?(REAL_KAMAL_PROXY) ? REAL_KAMAL_PROXY : File.join(TOOLS_BIN, "kamal-proxy")
  end

  def real_kamal_proxy? = kamal_proxy_binary == REAL_KAMAL_PROXY

  def registry_has_images?
    IMAGES.keys.all? do |name|
      repo, tag = name.split(":")
      out, = Open3.capture2("curl", "-sf", "http://#{REGISTRY}/v2/#{repo}/tags/list")
      out.include?(%("#{tag}"))
    end
  end

  def image_changes(spec)
    case spec[:kind]
    when :app
      [ %(CMD ["/bin/start"]), "EXPOSE 80", "LABEL service=#{APP_SERVICE}", "ENV PATH=/bin" ]
    when :kamal_proxy
      # As the real image runs it: as the kamal-proxy user, state in ~/.config/kamal-proxy.
      [ %(CMD ["kamal-proxy", "run"]), "ENV PATH=/usr/local/bin:/bin", "ENV HOME=/home/kamal-proxy",
        "USER kamal-proxy:kamal-proxy", "EXPOSE 80", "EXPOSE 443" ]
    when :busybox
      [ %(CMD ["sh"]), "ENV PATH=/bin" ]
    when :traefik
      [ %(ENTRYPOINT ["/usr/local/bin/traefik"]), "ENV PATH=/usr/local/bin:/bin", "EXPOSE 80" ]
    end
  end

  # Images without a base image: busybox-static plus what the image needs.
  def build_rootfs_tar(spec, tar, root)
    FileUtils.rm_rf(root)
    FileUtils.mkdir_p(%w[bin etc tmp].map { |d| File.join(root, d) })
    FileUtils.cp("/bin/busybox", File.join(root, "bin", "busybox"))
    %w[sh cat echo env hostname httpd kill ls sleep wget].each { |c| File.symlink("busybox", File.join(root, "bin", c)) }
    case spec[:kind]
    when :app
      www = File.join(root, "www")
      FileUtils.mkdir_p(www)
      File.write(File.join(www, "index.html"), "#{APP_SERVICE} #{spec[:version]}\n")
      # Static assets, for `asset_path` (kept apart from /up, so bridging them never makes a version healthy).
      FileUtils.mkdir_p(File.join(www, "assets"))
      File.write(File.join(www, "assets", "app-#{spec[:version]}.css"), "/* #{spec[:version]} */\n")
      File.write(File.join(www, "up"), "ok\n") if spec[:healthy]
      # PID 1 exits on TERM, or every `docker stop` would wait out its timeout.
      File.write(File.join(root, "bin", "start"), <<~SH)
        #!/bin/sh
        trap 'kill $child 2>/dev/null; exit 0' TERM INT
        [ -n "$KAMAL_VERSION" ] && echo "$KAMAL_VERSION" > /www/kamal_version
        # /version: the version this container runs, as the traffic check reads it (bench/traffic.rb).
        echo "${KAMAL_VERSION:-#{spec[:version]}}" > /www/version
        env > /tmp/env
        httpd -f -p 80 -h /www &
        child=$!
        wait $child
      SH
      File.chmod(0o755, File.join(root, "bin", "start"))
      # Kamal 1.x's default health check runs `curl -f http://localhost:<port>/up`: busybox wget does it.
      File.write(File.join(root, "bin", "curl"), <<~SH)
        #!/bin/sh
        # Test stand-in for curl: fetches the last argument that is not an option, fails on HTTP errors.
        for arg; do case "$arg" in -*) ;; *) url=$arg ;; esac; done
        exec wget -q -O - "$url"
      SH
      File.chmod(0o755, File.join(root, "bin", "curl"))
    when :traefik
      bin = File.join(root, "usr", "local", "bin")
      FileUtils.mkdir_p(bin)
      FileUtils.cp(File.join(TOOLS_BIN, "traefik"), bin)
    when :kamal_proxy
      bin = File.join(root, "usr", "local", "bin")
      home = File.join(root, "home", "kamal-proxy")
      FileUtils.mkdir_p([ bin, File.join(home, ".config", "kamal-proxy") ])
      FileUtils.cp(kamal_proxy_binary, File.join(bin, "kamal-proxy"))
      File.write(File.join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nkamal-proxy:x:1000:1000::/home/kamal-proxy:/bin/sh\n")
      File.write(File.join(root, "etc", "group"), "root:x:0:\nkamal-proxy:x:1000:\n")
      FileUtils.chown_R(1000, 1000, home)
      File.chmod(0o1777, File.join(root, "tmp")) # kamal-proxy's control socket
    end
    sh("tar", "-C", root, "-cf", tar, ".")
  end

  # A process that holds the host's mount + UTS namespaces (joined to its network namespace), with a
  # private /run, /root and /tmp: then /var/run/docker.sock, ~/.kamal and ~/.docker are the host's own.
  def start_holder(ns, dir, hostname)
    cgroup = File.join(dir, "cgroup")
    FileUtils.mkdir_p([ "/etc/docker", File.join(dir, "etc-docker") ]) # dockerd's key.json (its ID) is per host
    # `/sys` is remounted for the namespace's devices, which hides the cgroup mounts dockerd needs.
    script = [
      "mount --rbind /sys/fs/cgroup #{cgroup}",
      "mount -t sysfs sysfs /sys",
      "mount --rbind #{cgroup} /sys/fs/cgroup",
      "umount -l #{cgroup}",
      "mount --bind #{dir}/run /run",
      "mount --bind #{dir}/root /root",
      "mount --bind #{dir}/tmp /tmp",
      "mount --bind #{dir}/etc-docker /etc/docker",
      "hostname #{hostname}",
      "exec sleep infinity"
    ].join(" && ")
    pid = Process.spawn("nsenter", "--net=/run/netns/#{ns}", "unshare", "--mount", "--uts", "--propagation", "private",
      "sh", "-c", script, pgroup: true, out: File::NULL, err: File.join(dir, "holder.log"))
    Process.detach(pid)
    wait_until(what: "namespace holder for #{hostname}") { File.read("/proc/#{pid}/comm").strip == "sleep" rescue false }
    pid
  end

  def start_sshd(holder, dir)
    spawn_logged([ "nsenter", "-t", holder.to_s, "-m", "-u", "-n", "/usr/sbin/sshd", "-D", "-f", File.join(dir, "sshd_config"),
                   "-E", File.join(dir, "sshd.log") ], File::NULL)
  end

  def start_dockerd(holder, dir, data_root, cgroup_parent)
    cmd = [ "nsenter", "-t", holder.to_s, "-m", "-u", "-n", "dockerd", "--config-file", DAEMON_JSON, "--data-root", data_root,
            "--exec-root", "/run/docker", "--pidfile", "/run/docker.pid", "-H", "unix:///run/docker.sock",
            "--cgroup-parent", cgroup_parent, "--log-level", ENV.fetch("KAMAL_RS_LAB_DOCKERD_LOG", "warn") ]
    spawn_logged(cmd, File.join(dir, "dockerd.log"))
  end

  def start_host(host)
    FileUtils.rm_rf(host.dir)
    FileUtils.mkdir_p(%w[run/sshd root/.ssh tmp docker cgroup].map { |d| File.join(host.dir, d) })
    File.chmod(0o700, File.join(host.dir, "root", ".ssh"))
    FileUtils.cp("#{KEY}.pub", File.join(host.dir, "root", ".ssh", "authorized_keys"))
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", File.join(host.dir, "ssh_host_ed25519_key"))
    write_wrapper(host)
    write_sshd_config(host)

    sh("ip", "netns", "add", host.ns)
    sh("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.ns)
    sh("ip", "link", "set", host.veth, "master", BRIDGE, "up")
    sh("ip", "-n", host.ns, "addr", "add", "#{host.ip}/24", "dev", "eth0")
    sh("ip", "-n", host.ns, "link", "set", "eth0", "up")
    sh("ip", "-n", host.ns, "link", "set", "lo", "up")

    holder = start_holder(host.ns, host.dir, host.name)
    sshd = start_sshd(holder, host.dir)
    dockerd = start_dockerd(holder, host.dir, File.join(host.dir, "docker"), "#{NS_PREFIX}#{host.name}")
    wait_for_port(host.ip, 22, what: "sshd on #{host.name}")
    wait_for_docker(host.docker_socket)
    { "index" => host.index, "name" => host.name, "ip" => host.ip, "ns" => host.ns, "dir" => host.dir,
      "holder" => holder, "sshd" => sshd, "dockerd" => dockerd }
  end

  # Logs every command sshd runs (time, client ip:port, wrapper pid, the command with newlines as \n),
  # runs it unchanged (stdin, exit status, scp and sftp keep working), then logs its end and status.
  def write_wrapper(host)
    path = File.join(host.dir, "ssh-wrapper")
    File.write(path, <<~'SH'.gsub("TRANSCRIPT", host.transcript))
      #!/bin/bash
      set -- $SSH_CLIENT
      client="$1:$2"
      printf '%s %s %s %s\n' "$EPOCHREALTIME" "$client" "$$" "${SSH_ORIGINAL_COMMAND//$'\n'/\\n}" >> TRANSCRIPT
      [ -n "$SSH_ORIGINAL_COMMAND" ] || exec "$SHELL" -l
      "$SHELL" -c "$SSH_ORIGINAL_COMMAND"
      rc=$?
      printf '%s %s %s #exit %s\n' "$EPOCHREALTIME" "$client" "$$" "$rc" >> TRANSCRIPT
      exit $rc
    SH
    File.chmod(0o755, path)
    FileUtils.touch(host.transcript)
  end

  def write_sshd_config(host)
    File.write(File.join(host.dir, "sshd_config"), <<~CONF)
      ListenAddress #{host.ip}:22
      HostKey #{File.join(host.dir, "ssh_host_ed25519_key")}
      PidFile none
      PermitRootLogin prohibit-password
      PasswordAuthentication no
      KbdInteractiveAuthentication no
      UsePAM no
      StrictModes no
      UseDNS no
      AuthorizedKeysFile /root/.ssh/authorized_keys
      ForceCommand #{File.join(host.dir, "ssh-wrapper")}
      Subsystem sftp /usr/lib/openssh/sftp-server
    CONF
  end

  def write_ssh_client_files(hosts)
    File.write(KNOWN_HOSTS, hosts.map { |h|
      key = File.read(File.join(h.dir, "ssh_host_ed25519_key.pub")).split[0, 2].join(" ")
      "#{h.ip} #{key}\n"
    }.join)
    File.write(SSH_CONFIG, <<~CONF)
      Host #{NET}.*
        User root
        IdentityFile #{KEY}
        IdentitiesOnly yes
        UserKnownHostsFile #{KNOWN_HOSTS}
        StrictHostKeyChecking yes
        ConnectTimeout 5
    CONF
  end

  # Adds RTT by delaying each packet RTT/2 where it arrives: root→host in the host's PREROUTING,
  # host→root in the root namespace's INPUT from the bridge.
  def start_latency(hosts, rtt)
    rule = [ "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass", "-m", "comment", "--comment", TAG ]
    hosts.each { |h| sh("ip", "netns", "exec", h.ns, "iptables", "-t", "mangle", "-A", "PREROUTING", "-i", "eth0", *rule) }
    sh("iptables", "-t", "mangle", "-A", "INPUT", "-i", BRIDGE, *rule)
    log = File.join(STATE, "netem.log")
    pid = spawn_logged([ File.join(TOOLS_BIN, "lab-netem"), (rtt / 2.0).round.to_s, "self", *hosts.map { |h| "/run/netns/#{h.ns}" } ], log)
    wait_until(what: "lab-netem (#{log})") do
      raise Error, "lab-netem failed: #{File.read(log)}" unless alive?(pid)

      File.read(log).include?("ready")
    end
    pid
  end

  # ---- teardown pieces ---------------------------------------------------------------------------

  def stop_host(h)
    stop_pid(h["dockerd"], wait: 20)
    stop_pid(h["sshd"])
    stop_pid(h["holder"])
    kill_namespace(h["ns"])
  end

  def kill_namespace(ns)
    return unless File.exist?("/run/netns/#{ns}")

    pids, = Open3.capture2("ip", "netns", "pids", ns)
    pids.split.each { |p| Process.kill("KILL", p.to_i) rescue nil }
    sh("ip", "netns", "del", ns, allow_failure: true)
  end

  def stale_namespaces
    out, = Open3.capture2("ip", "netns", "list")
    out.lines.map { |l| l.split.first }.compact.select { |n| n.start_with?(NS_PREFIX) }
  end

  def remove_tagged_rules
    [ %w[filter], %w[mangle] ].each do |(table)|
      out, = Open3.capture2("iptables", "-t", table, "-S")
      out.lines.grep(/--comment "?#{TAG}"?/).each do |rule|
        args = rule.split.drop(1) # "-A CHAIN ..." → "CHAIN ..."
        sh("iptables", "-t", table, "-D", *args.map { |a| a.delete('"') }, allow_failure: true)
      end
    end
  end

  def stop_pid(pid, wait: 5)
    return unless alive?(pid)

    Process.kill("TERM", pid) rescue nil
    deadline = Time.now + wait
    sleep 0.05 while alive?(pid) && Time.now < deadline
    Process.kill("KILL", pid) rescue nil if alive?(pid)
  end

  # ---- helpers -------------------------------------------------------------------------------------

  def alive?(pid)
    return false unless pid

    Process.kill(0, pid)
    !File.read("/proc/#{pid}/stat").split[2].eql?("Z")
  rescue Errno::ESRCH, Errno::ENOENT
    false
  end

  def spawn_logged(cmd, log)
    pid = Process.spawn(*cmd, pgroup: true, in: File::NULL, out: log, err: log == File::NULL ? File::NULL : [ :child, :out ])
    Process.detach(pid)
    pid
  end

  def wait_for_port(ip, port, what:, timeout: 20)
    wait_until(what: what, timeout: timeout) { Socket.tcp(ip, port, connect_timeout: 0.5).close || true rescue false }
  end

  def wait_for_docker(socket, timeout: 30)
    wait_until(what: "dockerd at #{socket}", timeout: timeout) do
      system("docker", "-H", "unix://#{socket}", "version", "--format", "{{.Server.Version}}", out: File::NULL, err: File::NULL)
    end
  end

  # Waits for a state (the block true), checked every 50 ms; past `timeout` seconds raises, saying
  # what it waited for and (`saw`, a lambda) what it saw instead.
  def wait_until(what:, timeout: 20, saw: nil)
    deadline = Time.now + timeout
    until yield
      if Time.now > deadline
        raise Error, "timed out after #{timeout} s waiting for #{what}#{"; saw: #{saw.call}" if saw}"
      end

      sleep 0.05
    end
  end

  def sh(*cmd, allow_failure: false, chdir: nil)
    opts = chdir ? { chdir: chdir } : {}
    out, status = Open3.capture2e(*cmd, **opts)
    return out if status.success? || allow_failure

    raise Error, "#{cmd.grep(String).join(" ")} failed: #{out.strip}"
  end

  def link?(name)
    system("ip", "link", "show", name, out: File::NULL, err: File::NULL)
  end

  # The saved state, updated by a block (the fault helpers restart daemons).
  def update_state
    state = load
    yield state
    save(state)
  end

  def find_host(name)
    hosts.find { |h| h["name"] == name || h["ip"] == name } or raise Error, "no lab host #{name}"
  end

  def load
    JSON.parse(File.read(File.join(STATE, "lab.json")))
  rescue Errno::ENOENT
    {}
  end

  def save(state)
    FileUtils.mkdir_p(STATE)
    File.write(File.join(STATE, "lab.json"), JSON.pretty_generate(state))
  end
end

if $PROGRAM_NAME == __FILE__
  require_relative "sim"
  option = ->(name) { ARGV.include?(name) ? ARGV[ARGV.index(name) + 1] : nil }
  begin
    case ARGV.shift
    when "up"
      count = Integer(ARGV.shift || 3)
      rtt = Integer(option.call("--rtt") || 0)
      started = Time.now
      if ARGV.include?("--sim")
        latency = option.call("--latency").to_s.split(",").to_h { |kv| k, v = kv.split("="); [ k, Float(v) ] }
        SimLab.up(count, rtt: rtt, latency: latency, max_startups: option.call("--max-startups"),
                         max_sessions: option.call("--max-sessions"))
        puts "sim up: #{count} simulated hosts (#{SimLab.ip(1)} .. #{SimLab.ip(count)}), rtt #{rtt} ms, in #{(Time.now - started).round(1)} s"
        puts "ssh -F #{SimLab::SSH_CONFIG} #{SimLab.ip(1)}"
        exit 0
      end
      builder = ARGV.include?("--builder")
      Lab.up(count, rtt: rtt, builder: builder)
      puts "lab up: #{count} hosts (#{Lab.hosts.map { |h| h["ip"] }.join(", ")}), rtt #{rtt} ms, in #{(Time.now - started).round(1)} s"
      puts "ssh -F #{Lab::SSH_CONFIG} #{Lab.hosts.first["ip"]}"
      puts "builder: DOCKER_HOST=unix://#{Lab::BUILDER_SOCKET}" if builder
    when "down"
      SimLab.down if SimLab.up?
      Lab.down
    when "status"
      Lab.status
      puts "sim: #{SimLab.hosts.size} simulated hosts" if SimLab.up?
    when "exec" then exit Lab.exec_in(ARGV.shift, *ARGV)
    when "transcript"
      Lab.transcript(ARGV.shift).each do |l|
        took = l[:ended] ? format("%.3fs exit %d", l[:ended] - l[:time], l[:status]) : "running"
        puts "#{format("%.6f", l[:time])} #{l[:client]} (#{took}) #{l[:command]}"
      end
    when "reset-transcripts" then Lab.reset_transcripts
    when "env" then Lab.env_exports.merge(SimLab.env_exports).each { |k, v| puts "export #{k}=#{v}" }
    else
      warn "usage: lab up N [--rtt MS] [--builder] | up N --sim [--rtt MS] [--max-startups S] [--max-sessions M] " \
           "[--latency pull=1.0,...] | down | status | exec HOST CMD... | transcript HOST | reset-transcripts | env"
      exit 2
    end
  rescue Lab::Error => e
    warn "lab: #{e.message}"
    exit 1
  end
end
