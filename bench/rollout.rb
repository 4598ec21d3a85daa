# Rollout benchmark (not a test): deploy then redeploy to 1, 4 and 16 lab hosts, with 0 and 50 ms added
# RTT, through the real `kamal-rs` command line. Beside each warm redeploy it measures the floor: a plain
# script that opens one new SSH connection per host and runs, all hosts in parallel, only the docker work
# a redeploy cannot avoid (pull, `docker run` of the new container, `kamal-proxy deploy`, stop the old
# one, tag latest). Prints a table of wall times, SSH connections per host and remote commands per host.
#
#   ruby bench/rollout.rb [--hosts 1,4,16] [--rtt 0,50]        (as root; brings the lab up and down)
#
# KAMAL_RS_ROOT=/path/to/other/checkout times that checkout's kamal-rs (its lib/ with its built
# extension) with this lab and floor: two versions measured the same way. KAMAL_RS_BENCH_KAMAL naming a
# Ruby Kamal command (say "bundle exec kamal") adds its `kamal redeploy` to each pair, on the same hosts.
#
#   ruby bench/rollout.rb --hosts 64,128 --rtt 50 --v1-hosts "" --repeat 3        (fleets)
require "open3"
require "optparse"
require "securerandom"
require_relative "support"
counts = [ 1, 4, 16 ]
rtts = [ 0, 50 ]
v1_counts = [ 4 ]
repeat = nil
compare_barrier = false
OptionParser.new do |o|
  o.on("--repeat N", Integer, "warm redeploy / floor pairs per cell (default: 9, 7, 5 for 1, 4, 16+ hosts)") { |v| repeat = v }
  o.on("--hosts LIST") { |v| counts = v.split(",").map(&:to_i) }
  o.on("--rtt LIST") { |v| rtts = v.split(",").map(&:to_i) }
  o.on("--v1-hosts LIST", "Kamal 1.x rows (empty: none)") { |v| v1_counts = v.split(",").map(&:to_i) }
  o.on("--pull-barrier-cost", "in each pair, also a redeploy with --no-pull-barrier: what the barrier costs") { compare_barrier = true }
end.parse!

# The same app as a Kamal 1.x (Traefik) config: env push once, then deploy and redeploy.
def config_v1_for(hosts)
  <<~YAML
    service: app
    image: app
    servers:
    #{hosts.map { |h| "  - #{h}" }.join("\n")}
    registry:
      server: #{Lab::REGISTRY}
      username: lab
      password: lab
    healthcheck:
      port: 80
    ssh:
      keys: [ #{Lab::KEY} ]
      config: #{Lab::SSH_CONFIG}
  YAML
end

# One pair varies by ±0.1x on this 2-core VM (other tenants' load comes and goes): small cells, which are
# cheap, get more pairs.
def repeats(hosts, given)
  given || (hosts <= 1 ? 9 : hosts <= 4 ? 7 : 5)
end



# One new SSH connection per host, only the unavoidable docker work, all hosts in parallel. The
# `docker run` and `kamal-proxy deploy` are the redeploy's own (same options, the env file the
# deploy left), so the floor starts the same container the same way; nothing else is done.
def floor(hosts, from, to, run)
  floor_run(hosts, name: "app-web-floor-#{to}-#{run}", version: to, stop: "app-web-#{from}", pull: true)
end

prepare_bench!
rows = []
v1_rows = []
begin
  rtts.each do |rtt|
    counts.each do |n|
      hosts = lab_hosts(n, rtt)
      with_app(hosts) do |dir|
        Lab.reset_transcripts
        deploy, ok1 = cold_deploy(dir)
        deploy_conns, deploy_cmds = per_host(hosts)
        first, ok2 = kamal_rs(dir, "redeploy", "-P", "--version", "v2")
        # Warm redeploys and floors alternate, in pairs; the table shows the medians of each and of the
        # pairs' ratios (a pair runs back to back, so it shares the machine's load of the moment).
        warms, floors, unbarred, theirs, ok3, kamal_failed = [], [], [], [], true, 0
        conns = cmds = nil
        repeats(n, repeat).times do |i|
          to, other = (i.even? ? %w[v1 v2] : %w[v2 v1]).map { |v| fresh_version(v) }
          Lab.reset_transcripts
          t, ok = kamal_rs(dir, "redeploy", "-P", "--version", to)
          conns, cmds = per_host(hosts) if i.zero?
          ft, fok = floor(hosts, to, other, i)
          warms << t
          floors << ft
          ok3 &&= ok && fok
          unless KAMAL.empty?
            # Kamal stops the floor's container (the latest running one of the role) as it would its own.
            k, kok = kamal(dir, "redeploy", "-P", "--version", fresh_version(other))
            theirs << k
            kamal_failed += 1 unless kok
          end
          next unless compare_barrier

          u, uok = kamal_rs(dir, "redeploy", "-P", "--no-pull-barrier", "--version", fresh_version(i.even? ? "v1" : "v2"))
          unbarred << u
          ok3 &&= uok
        end
        warm, floor_time = median(warms), median(floors)
        ratio = median(warms.zip(floors).map { |w, f| w / f })
        barrier = unbarred.empty? ? nil : [ median(unbarred), median(warms.zip(unbarred).map { |w, u| w / u }) ]
        rows << { n: n, rtt: rtt, kamal: theirs.empty? ? nil : median(theirs), kamal_failed: kamal_failed, deploy: deploy, first: first, warm: warm, floor: floor_time, ratio: ratio, conns: conns, cmds: cmds, barrier: barrier,
                  deploy_conns: deploy_conns, deploy_cmds: deploy_cmds, ok: ok1 && ok2 && ok3 }
        warn "hosts=#{n} rtt=#{rtt}: deploy #{deploy.round(2)} s, redeploys #{warms.map { |w| w.round(2) }}, floors #{floors.map { |f| f.round(2) }}, " \
             "kamal #{theirs.map { |k| k.round(2) }}"
      end
    end
    v1_counts.each do |n|
      hosts = lab_hosts(n, rtt)
      with_app(hosts, config_v1_for(hosts)) do |dir|
        _, ok0 = kamal_rs(dir, "env", "push")
        Lab.reset_transcripts
        deploy, ok1 = kamal_rs(dir, "deploy", "-P", "--version", "v1")
        deploy_conns, deploy_cmds = per_host(hosts)
        Lab.reset_transcripts
        redeploy, ok2 = kamal_rs(dir, "redeploy", "-P", "--version", "v2")
        conns, cmds = per_host(hosts)
        v1_rows << { n: n, rtt: rtt, deploy: deploy, redeploy: redeploy, conns: [ conns, deploy_conns ].max,
                     cmds: "#{deploy_cmds}, #{cmds}", ok: ok0 && ok1 && ok2 }
        warn "1.x hosts=#{n} rtt=#{rtt}: deploy #{deploy.round(2)} s, redeploy #{redeploy.round(2)} s"
      end
    end
  end
ensure
  Lab.down(quiet: true)
end

puts
puts "| hosts | RTT | deploy (cold) | redeploy (warm) | floor | redeploy / floor (median of pairs) | SSH conns/host | remote cmds/host (deploy, redeploy) | ok |"
puts "|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"
rows.each do |r|
  puts format("| %d | %d ms | %.2f s | %.2f s | %.2f s | %.2f× | %d | %d, %d | %s |", r[:n], r[:rtt], r[:deploy], r[:warm], r[:floor],
    r[:ratio], [ r[:conns], r[:deploy_conns] ].max, r[:deploy_cmds], r[:cmds], r[:ok] ? "yes" : "NO")
end

if rows.any? { |r| r[:kamal] }
  puts
  puts "Ruby Kamal's `kamal redeploy` (#{KAMAL.join(" ")}) in the same pairs, on the same hosts:"
  puts
  puts "| hosts | RTT | Kamal redeploy | kamal-rs redeploy | floor | Kamal / kamal-rs | Kamal / floor | Kamal runs failed |"
  puts "|---:|---:|---:|---:|---:|---:|---:|---:|"
  rows.select { |r| r[:kamal] }.each do |r|
    puts format("| %d | %d ms | %.2f s | %.2f s | %.2f s | %.1f× | %.1f× | %d |", r[:n], r[:rtt], r[:kamal], r[:warm], r[:floor],
      r[:kamal] / r[:warm], r[:kamal] / r[:floor], r[:kamal_failed])
  end
end

if rows.any? { |r| r[:barrier] }
  puts
  puts "The pull barrier (no host boots before every host has pulled) against --no-pull-barrier:"
  puts
  puts "| hosts | RTT | redeploy | redeploy --no-pull-barrier | with / without (median of pairs) |"
  puts "|---:|---:|---:|---:|---:|"
  rows.select { |r| r[:barrier] }.each do |r|
    puts format("| %d | %d ms | %.2f s | %.2f s | %.2f× |", r[:n], r[:rtt], r[:warm], *r[:barrier])
  end
end

unless v1_rows.empty?
  puts
  puts "Kamal 1.x (Traefik) config, prebuilt image:"
  puts
  puts "| hosts | RTT | deploy | redeploy | SSH conns/host | remote cmds/host (deploy, redeploy) | ok |"
  puts "|---:|---:|---:|---:|---:|---:|:---:|"
  v1_rows.each do |r|
    puts format("| %d | %d ms | %.2f s | %.2f s | %d | %s | %s |", r[:n], r[:rtt], r[:deploy], r[:redeploy], r[:conns], r[:cmds], r[:ok] ? "yes" : "NO")
  end
end
