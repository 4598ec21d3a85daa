# Fleet benchmark (not a test): on N simulated hosts (test/lab/sim.rb: a sshd and a docker stand-in
# per host, added RTT), once each and side by side: `kamal-rs deploy` (cold), `kamal-rs redeploy` of a
# new version, the floor's redeploy, `kamal-rs rollback`, the floor's rollback, then Ruby Kamal 2.12's
# redeploy and rollback on the same hosts (where it finishes: a failure or a hang is counted, with the
# last lines it printed). For kamal-rs's redeploy: CPU, peak RSS, open files, ssh processes, and when
# the new version went live on the first and on the last host (from its --events file).
#
# The floor opens one SSH connection per host, at most `max_concurrent_starts` (30, sshkit's default,
# which kamal-rs keeps) being set up at once, and runs over it one command with only the docker work any
# tool must do (pull, run, kamal-proxy deploy, stop the old container, tag latest).
#
#   ruby bench/fleet.rb --hosts 1000 --rtt 50 [--kamal-timeout 900] [--no-kamal]   (as root)
#
# It brings up and takes down its own simulated fleet. The last line:
#   fleet N hosts @MSms: kamal-rs W s, floor F s, ratio R, kamal K s        (or `kamal failed` / `kamal hung`)
#
# With --fail P%, a fleet with failing hosts instead (SimLab.pick_failing: P% of the hosts, picked at
# random with a printed seed, half unreachable, half never healthy; deploy_timeout 10 s): a redeploy
# with no failure, then one with them, with --max-fail M (left behind) or --revert-on-failure.
# --fail-kind KIND makes every failing host fail one way (`unhealthy`: they fail at boot, after others
# switched, so a revert has hosts to put back); --live shows the failing run's live view. Its last
# line:
#   fleet N hosts @MSms, F failing: kamal-rs W s, K on the new version, F left behind, no failures W0 s, ratio R
#   fleet N hosts @MSms, F failing, revert: kamal-rs W s, N on the old version, revert T s
require "optparse"
require "json"
require "timeout"
require_relative "support"
require_relative "../test/lab/sim"

counts = [ 128 ]
rtt = 50
kamal_timeout = 900
with_kamal = true
fail_share = nil
max_fail = nil
revert = false
fail_kind = nil
live = false
seed = Random.new_seed % 100_000
OptionParser.new do |o|
  o.on("--hosts LIST", "simulated hosts (a list runs each in turn)") { |v| counts = v.split(",").map(&:to_i) }
  o.on("--rtt MS", Integer) { |v| rtt = v }
  o.on("--kamal-timeout SECONDS", Integer, "Ruby Kamal counts as hung after this long (default 900)") { |v| kamal_timeout = v }
  o.on("--no-kamal", "leave Ruby Kamal out") { with_kamal = false }
  o.on("--fail P%", "that share of the hosts failing (half unreachable, half never healthy)") { |v| fail_share = v.delete("%").to_f }
  o.on("--max-fail N|P%", "kamal-rs's failure budget for the failing run") { |v| max_fail = v }
  o.on("--revert-on-failure", "the failing run reverts instead") { revert = true }
  o.on("--fail-kind KIND", SimLab::FAULTS, "every failing host fails so (#{SimLab::FAULTS.join(", ")}; default: half unreachable, half unhealthy)") { |v| fail_kind = v }
  o.on("--live", "the failing run shows its live view on this terminal (no log file)") { live = true }
  o.on("--seed N", Integer, "which hosts fail (printed; random by default)") { |v| seed = v }
end.parse!

STARTS = 30
KAMAL_212 = KAMAL.empty? ? Shellwords.split(ENV.fetch("KAMAL_RS_FLEET_KAMAL", "kamal-2.12")) : KAMAL

# The floor (see the top), over the simulated hosts: one ssh process and one session per host, the
# script's first line (`ready`, printed once the handshake and the session are up) freeing the host's
# start slot, so at most STARTS handshakes run at once, as kamal-rs holds them.
def sim_floor(hosts, name:, version:, stop:, pull:)
  starts = Queue.new
  STARTS.times { starts << true }
  timed do
    hosts.map do |h|
      Thread.new do
        script = floor_script(h, image: "#{SimLab::REGISTRY}/app", name: name, version: version, stop: stop, pull: pull)
        starts.pop
        freed = false
        Open3.popen2e("ssh", "-F", SimLab::SSH_CONFIG, "-o", "BatchMode=yes", h, "echo ready && #{script}") do |stdin, out, wait|
          stdin.close
          first = out.gets
          starts << true
          freed = true
          rest = out.read
          ok = first&.strip == "ready" && wait.value.success?
          warn "floor #{h}: #{first}#{rest}" unless ok
          ok
        end
      ensure
        starts << true unless freed
      end
    end.all?(&:value)
  end
end

# `kamal-rs ARGS` under /usr/bin/time, sampled (bench/support.rb's `sample`), with an events file.
def measured_kamal_rs(dir, *args, live: false)
  events = File.join(dir, "events.jsonl")
  time_out = File.join(dir, "time.txt")
  log = File.join(dir, "kamal-rs.log")
  env = { "RUBYLIB" => File.join(KAMAL_RS_ROOT, "lib") }
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  pid = Process.spawn(env, "/usr/bin/time", "-o", time_out, "-f", "%U %S %M", RbConfig.ruby, File.join(KAMAL_RS_ROOT, "exe", "kamal-rs"),
                      *args, "--events", events, *("-q" unless live), chdir: dir, **(live ? {} : { out: log, err: log }))
  peak, ok = sample(pid, "kamal-rs", every: 0.25)
  wall = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  warn File.read(log) unless ok || live
  user, sys, rss_kb = File.read(time_out).split.last(3).map(&:to_f)
  { wall: wall, cpu: user + sys, rss: rss_kb / 1024, ok: ok, **peak, **live_times(events) }
end

# When the new version went live (kamal-proxy's health check passed, else its boot ended) on the first
# and on the last host, in seconds from the start of the run.
def live_times(events)
  ends = Hash.new { |h, k| h[k] = {} }
  File.foreach(events) do |line|
    e = JSON.parse(line)
    next unless e["event"] == "step_end" && %w[boot health].include?(e["step"]) && e["status"] == "ok"

    ends[e["host"]][e["step"]] = e["elapsed"] # at the step's end
  end
  live = ends.values.map { |s| s["health"] || s["boot"] }
  { first_live: live.min, last_live: live.max, live_hosts: live.size }
rescue Errno::ENOENT
  {}
end

# Ruby Kamal's `args` in `dir`, timed; [seconds, :ok | :failed | :hung, why].
def measured_kamal(dir, limit, *args)
  log = File.join(dir, "kamal.log")
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  pid = Process.spawn(*KAMAL_212, *args, chdir: dir, out: log, err: log, pgroup: true)
  outcome = begin
    Timeout.timeout(limit) { Process.wait(pid) }
    $?.success? ? :ok : :failed
  rescue Timeout::Error
    Process.kill("-KILL", pid) rescue nil
    Process.wait(pid) rescue nil
    :hung
  end
  wall = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  why = outcome == :ok ? nil : File.readlines(log).last(3).map(&:strip).join(" | ")
  [ wall, outcome, why ]
end

# What each host runs: the version of its app container that is running, from the stand-in's state.
def versions_on(hosts)
  hosts.to_h do |ip|
    running = SimLab.state_of(ip).fetch("containers", []).find { |c| c["name"].start_with?("app-web-") && c["status"] == "running" }
    [ ip, running && running["name"].delete_prefix("app-web-") ]
  end
end

# The failing fleet's run (see the top); prints its last line and exits.
def fail_bench(n, rtt, share, max_fail, revert, seed, kind: nil, live: false)
  SimLab.up(n, rtt: rtt)
  hosts = SimLab.hosts
  config = SimLab.app_config(hosts) + "deploy_timeout: 10\n"
  with_app(hosts, config) do |dir|
    _, ok = kamal_rs(dir, "deploy", "-P", "--version", "v1")
    abort "the first deploy failed" unless ok
    clean = measured_kamal_rs(dir, "redeploy", "-P", "--version", SimLab.push("v2-#{SecureRandom.hex(4)}"))
    abort "the redeploy with no failure failed" unless clean[:ok]
    before = versions_on(hosts)
    count = (n * share / 100.0).round
    failing = SimLab.pick_failing(count, Random.new(seed), kind: kind)
    warn "seed #{seed}: #{count} failing hosts: #{failing.first(10).join(", ")}#{" ..." if count > 10}"
    to = SimLab.push("v3-#{SecureRandom.hex(4)}")
    args = [ "redeploy", "-P", "--version", to ]
    args += [ "--max-fail", max_fail ] if max_fail
    args << "--revert-on-failure" if revert
    run = measured_kamal_rs(dir, *args, live: live)
    failing.each { |ip| SimLab.heal(ip) }
    after = versions_on(hosts)
    events = File.join(dir, "events.jsonl")
    end_event = File.readlines(events).map { |l| JSON.parse(l) }.find { |e| e["event"] == "run_end" } || {}
    label = format("fleet %d hosts @%dms, %d failing", n, rtt, count)
    if revert
      on_old = hosts.count { |ip| after[ip] == before[ip] }
      reverted = end_event.fetch("reverted", []).sum { |r| r["hosts"].size }
      revert_s = end_event["revert_seconds"] || 0.0
      puts format("%s, revert: kamal-rs %.1f s, %d on the old version, revert %.1f s (%d hosts went back)", label, run[:wall], on_old, revert_s, reverted)
    else
      on_new = hosts.count { |ip| after[ip] == to }
      left = end_event.fetch("left_behind", []).size
      puts format("%s: kamal-rs %.1f s, %d on the new version, %d left behind, no failures %.1f s, ratio %.2f",
                  label, run[:wall], on_new, left, clean[:wall], run[:wall] / clean[:wall])
    end
  end
ensure
  SimLab.down(quiet: true)
end

prepare_bench!
if fail_share
  counts.each { |n| fail_bench(n, rtt, fail_share, max_fail, revert, seed, kind: fail_kind, live: live) }
  exit
end
unless KAMAL_212.empty? || system("which", KAMAL_212.first, out: File::NULL)
  warn "no #{KAMAL_212.first} (script/install-ruby-kamal): Ruby Kamal left out"
  with_kamal = false
end
rows = []
begin
  counts.each do |n|
    SimLab.up(n, rtt: rtt)
    hosts = SimLab.hosts
    with_app(hosts, SimLab.app_config(hosts)) do |dir|
      row = { n: n, rtt: rtt }
      row[:deploy], ok = kamal_rs(dir, "deploy", "-P", "--version", "v1")
      to = SimLab.push("v2-#{SecureRandom.hex(4)}")
      row[:redeploy] = measured_kamal_rs(dir, "redeploy", "-P", "--version", to)
      floor_version = SimLab.push("v2-#{SecureRandom.hex(4)}")
      row[:floor], fok = sim_floor(hosts, name: "app-web-floor", version: floor_version, stop: "app-web-#{to}", pull: true)
      # The rollback goes back to v1 (kamal-rs stops the floor's container, the role's running one);
      # the floor's rollback then boots `to` again beside it.
      row[:rollback], rok = kamal_rs(dir, "rollback", "v1")
      row[:rollback_floor], rfok = sim_floor(hosts, name: "app-web-floor-rollback", version: to, stop: "app-web-v1", pull: false)
      row[:ok] = ok && row[:redeploy][:ok] && fok && rok && rfok
      if with_kamal
        limit = kamal_timeout
        row[:kamal] = measured_kamal(dir, limit, "redeploy", "-P", "--version", SimLab.push("v2-#{SecureRandom.hex(4)}"), "-q")
        row[:kamal_rollback] = measured_kamal(dir, limit, "rollback", "v1", "-q") if row[:kamal][1] == :ok
      end
      rows << row
      warn row.inspect
    end
  ensure
    SimLab.down(quiet: true)
  end
end

def kamal_cell(result)
  return "-" unless result

  seconds, outcome, = result
  outcome == :ok ? format("%.1f s", seconds) : "#{outcome} (#{seconds.round} s)"
end

puts
puts "| hosts | RTT | kamal-rs redeploy | floor | ratio | kamal-rs rollback | its floor | ratio | Ruby Kamal redeploy | Ruby Kamal rollback | cold deploy | CPU | peak RSS | open files | ssh procs | first / last host live | ok |"
puts "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"
rows.each do |r|
  d = r[:redeploy]
  live = d[:first_live] ? format("%.1f / %.1f s", d[:first_live], d[:last_live]) : "-"
  puts format("| %d | %d ms | %.1f s | %.1f s | %.2f× | %.1f s | %.1f s | %.2f× | %s | %s | %.1f s | %.1f s | %.0f MB | %d | %d | %s | %s |",
    r[:n], r[:rtt], d[:wall], r[:floor], d[:wall] / r[:floor], r[:rollback], r[:rollback_floor], r[:rollback] / r[:rollback_floor],
    kamal_cell(r[:kamal]), kamal_cell(r[:kamal_rollback]), r[:deploy], d[:cpu], d[:rss], d[:fds], d[:ssh], live, r[:ok] ? "yes" : "NO")
end
rows.each do |r|
  next unless r[:kamal] && r[:kamal][1] != :ok

  puts "Ruby Kamal at #{r[:n]} hosts: #{r[:kamal][1]}: #{r[:kamal][2]}"
end
rows.each do |r|
  kamal = case r[:kamal]&.at(1)
          when nil then "kamal not run"
          when :ok then format("kamal %.1f s", r[:kamal][0])
          else "kamal #{r[:kamal][1]}"
          end
  puts format("fleet %d hosts @%dms: kamal-rs %.1f s, floor %.1f s, ratio %.2f, %s", r[:n], r[:rtt], r[:redeploy][:wall], r[:floor],
    r[:redeploy][:wall] / r[:floor], kamal)
end
