# Bastion benchmark (not a test): N lab hosts reachable only through a bastion whose sshd has
# MaxStartups 8, the config saying `ssh.proxy` and `sshkit.max_concurrent_starts: 8`. Times a cold
# `kamal-rs deploy`, then redeploys alternating between kamal-rs and, when KAMAL_RS_BENCH_KAMAL names a
# Ruby Kamal command, `kamal redeploy` on the same hosts.
#
#   ruby bench/bastion.rb [--hosts 32] [--rtt 50] [--repeat 3]        (as root; brings the lab up and down)
require "optparse"
require_relative "support"

count, rtt, repeat, starts = 32, 50, 3, 8
OptionParser.new do |o|
  o.on("--hosts N", Integer) { |v| count = v }
  o.on("--rtt MS", Integer) { |v| rtt = v }
  o.on("--repeat N", Integer) { |v| repeat = v }
end.parse!

prepare_bench!
begin
  bastion, *hosts = lab_hosts(count + 1, rtt)
  Lab.make_bastion(bastion, max_startups: starts)
  with_app(hosts, Lab.app_config(hosts, proxy: bastion, max_concurrent_starts: starts)) do |dir|
    cold, ok = kamal_rs(dir, "deploy", "-P", "--version", "v1")
    ours, theirs = [], []
    repeat.times do
      t, rok = kamal_rs(dir, "redeploy", "-P", "--version", "v2")
      ours << t
      ok &&= rok
      next if KAMAL.empty?
      t, kok = kamal(dir, "redeploy", "-P", "--version", "v1")
      theirs << t
      ok &&= kok
    end
    warn "kamal-rs #{ours.map { |t| t.round(2) }}, kamal #{theirs.map { |t| t.round(2) }}"
    puts
    puts "| hosts | RTT | bastion MaxStartups | kamal-rs deploy (cold) | kamal-rs redeploy | Kamal 2.12 redeploy | ok |"
    puts "|---:|---:|---:|---:|---:|---:|:---:|"
    kamal = theirs.empty? ? "-" : format("%.2f s", median(theirs))
    puts format("| %d | %d ms | %d | %.2f s | %.2f s | %s | %s |", count, rtt, starts, cold, median(ours), kamal, ok ? "yes" : "NO")
  end
ensure
  Lab.down(quiet: true)
end
