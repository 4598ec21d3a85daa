# Traffic benchmark (not a test): what a deploy does to live requests, kamal-rs beside Ruby Kamal 2.12,
# on N lab hosts behind the real kamal-proxy v0.9.2 (script/install-kamal-proxy). lab-traffic sends
# RATE requests a second to each web host's kamal-proxy (a new connection each, a 10 s deadline each)
# through each run, and the table gives per run: requests, failures (non-2xx, resets, timeouts),
# p50/p99/max latency, and when each host switched version (the app's /version says which answered).
#
#   ruby bench/traffic.rb --hosts 4 --rtt 20 [--rate 100] [--no-kamal]      (as root)
#
# Each tool starts from hosts wiped clean and a first deploy of v1 (not measured, nothing served
# before it), then, measured: `deploy` of v2, `redeploy` of v1, `rollback` to v2, and a deploy of v1
# whose new container never gets healthy on the last host (its health file removed: the health check
# path is served from a bind-mounted host directory). kamal-rs also runs `--revert-on-failure` with
# that host failing, and a canary wave whose canary (the first host) never gets healthy. It brings
# its own lab up and down. The last line:
#   traffic N hosts: kamal-rs F failed of N, p99 P ms; kamal F2 failed of N2, p99 P2 ms
require "optparse"
require_relative "support"
require_relative "../test/lab/traffic"

count = 4
rtt = 20
rate = 100
with_kamal = true
OptionParser.new do |o|
  o.on("--hosts N", Integer) { |v| count = v }
  o.on("--rtt MS", Integer) { |v| rtt = v }
  o.on("--rate N", Integer, "requests a second to each host (default 100)") { |v| rate = v }
  o.on("--no-kamal", "leave Ruby Kamal out") { with_kamal = false }
end.parse!

prepare_bench!
unless Traffic.real_proxy?
  abort "bench/traffic.rb needs the real kamal-proxy (script/install-kamal-proxy, from ../shared/kamal-proxy): the stand-in cannot measure traffic"
end
kamal_command = KAMAL.empty? ? [ "kamal-2.12" ] : KAMAL
if with_kamal && !system("which", kamal_command.first, out: File::NULL)
  warn "no kamal-2.12 (script/install-ruby-kamal): Ruby Kamal left out"
  with_kamal = false
end

def traffic_config(hosts)
  <<~YAML
    service: app
    image: app
    servers:
      web: [ #{hosts.join(", ")} ]
    proxy:
      healthcheck: { path: /health/up, interval: 1, timeout: 2 }
    volumes: [ "/root/health:/www/health" ]
    registry: { server: "#{Lab::REGISTRY}", username: lab, password: lab }
    builder: { arch: amd64 }
    deploy_timeout: 10
    ssh: { keys: [ #{Lab::KEY} ], config: #{Lab::SSH_CONFIG} }
  YAML
end

def on_host(ip, command)
  out, status = Open3.capture2e("ssh", "-F", Lab::SSH_CONFIG, "-o", "BatchMode=yes", ip, command)
  raise "#{ip}: #{command}: #{out}" unless status.success?

  out
end

# Every host as before any deploy: no container, no .kamal, the health file in place.
def wipe(hosts)
  hosts.each do |ip|
    on_host(ip, "ids=$(docker ps -aq); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null; rm -rf .kamal; " \
                "mkdir -p /root/health && echo ok > /root/health/up")
  end
end

def healthy(ip, yes)
  on_host(ip, yes ? "echo ok > /root/health/up" : "rm -f /root/health/up")
end

# One run of `command` (kamal-rs or Kamal) with traffic: [exit status, output, Traffic::Result].
def measured(command, dir, args, hosts, rate)
  (status, out), result = Traffic.during(hosts, rate: rate) do
    out, status = Open3.capture2e({ "RUBYLIB" => File.join(KAMAL_RS_ROOT, "lib") }, *command, *args, chdir: dir)
    [ status.exitstatus, out ]
  end
  [ status, out, result ]
end

KAMAL_RS = [ RbConfig.ruby, File.join(KAMAL_RS_ROOT, "exe", "kamal-rs") ].freeze

# The runs, each [name, args, expected exit status, host made unhealthy (index) or nil].
def runs_for(tool, last)
  runs = [
    [ "deploy v2", %w[deploy -P --version v2], 0, nil ],
    [ "redeploy v1", %w[redeploy -P --version v1], 0, nil ],
    [ "rollback v2", %w[rollback v2], 0, nil ]
  ]
  if tool == :kamal_rs
    runs << [ "--revert-on-failure, 1 host never healthy", %w[redeploy -P --version v1 --revert-on-failure], 1, last ]
    runs << [ "--canary 1, canary never healthy", %w[redeploy -P --version v1 --canary 1 --canary-wait 3 --revert-on-failure], 1, 0 ]
  end
  runs << [ "deploy v1, 1 host never healthy", %w[deploy -P --version v1], 1, last ]
  runs
end

rows = []
totals = {}
begin
  hosts = lab_hosts(count, rtt)
  with_app(hosts, traffic_config(hosts)) do |dir|
    tools = { kamal_rs: KAMAL_RS }
    tools[:kamal] = kamal_command if with_kamal
    tools.each do |tool, command|
      name = tool == :kamal_rs ? "kamal-rs" : "kamal 2.12"
      wipe(hosts)
      out, status = Open3.capture2e({ "RUBYLIB" => File.join(KAMAL_RS_ROOT, "lib") }, *command, "deploy", "-P", "--version", "v1", chdir: dir)
      abort "#{name}: the first deploy failed:\n#{out}" unless status.success?
      runs_for(tool, hosts.size - 1).each do |label, args, expected, unhealthy|
        healthy(hosts[unhealthy], false) if unhealthy
        status, out, result = measured(command, dir, args, hosts, rate)
        healthy(hosts[unhealthy], true) if unhealthy
        warn "#{name} #{label}: exit #{status}, expected #{expected}\n#{out.lines.last(15).join}" unless status == expected
        rows << Traffic.row(name, label, status, result)
        result.failure_summary.each { |f| warn "#{name} #{label}: #{f}" }
        result.slowest.each { |r| warn format("#{name} #{label}: slow: %.0f ms on %s at %.1f s (%s)", r.latency, r.host, r.at, r.outcome) }
        (totals[tool] ||= []) << result
      end
    end
  end
ensure
  Lab.down(quiet: true)
end

puts
puts Traffic::HEADER
rows.each { |r| puts r }
summary = totals.map do |tool, results|
  requests = results.flat_map(&:requests)
  all = Traffic::Result.new(requests: requests, seconds: 0)
  format("%s %d failed of %d, p99 %.0f ms", tool == :kamal_rs ? "kamal-rs" : "kamal", all.failed.size, requests.size, all.percentile(99))
end
puts "traffic #{count} hosts: #{summary.join("; ")}"
