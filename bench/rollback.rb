# Rollback benchmark (not a test): on N lab hosts that ran v1 then v2, `kamal-rs rollback` back and forth
# between the two, beside the floor and, when KAMAL_RS_BENCH_KAMAL names a Ruby Kamal command (say
# "bundle exec kamal"), `kamal rollback` on the same hosts. The floor opens one new SSH connection per
# host and does, all hosts in parallel, only what any rollback must: `docker run` of the old version
# (its image is there: no pull), `kamal-proxy deploy` to it, stop the running container, tag latest.
#
#   ruby bench/rollback.rb [--hosts 4,16] [--rtt 50] [--repeat 5]        (as root; brings the lab up and down)
require "optparse"
require "securerandom"
require_relative "support"

counts = [ 4, 16 ]
rtts = [ 50 ]
repeat = 5
OptionParser.new do |o|
  o.on("--hosts LIST") { |v| counts = v.split(",").map(&:to_i) }
  o.on("--rtt LIST") { |v| rtts = v.split(",").map(&:to_i) }
  o.on("--repeat N", Integer, "rollbacks of each tool per cell (default 5)") { |v| repeat = v }
end.parse!

# The running container is `running`; the floor boots `version` again as a new container.
def floor(hosts, running, version, run)
  floor_run(hosts, name: "app-web-floor-#{run}", version: version, stop: running)
end

prepare_bench!
rows = []
begin
  rtts.each do |rtt|
    counts.each do |n|
      hosts = lab_hosts(n, rtt)
      with_app(hosts) do |dir|
        _, ok = kamal_rs(dir, "deploy", "-P", "--version", "v1")
        _, ok2 = kamal_rs(dir, "redeploy", "-P", "--version", "v2")
        ok &&= ok2
        ours, theirs, floors, conns, cmds = [], [], [], nil, nil
        running = "app-web-v2"
        repeat.times do |i|
          # Each tool rolls back to the version the hosts do not run; the floor then takes over from it.
          target = i.even? ? "v1" : "v2"
          Lab.reset_transcripts
          t, rok = kamal_rs(dir, "rollback", target)
          conns, cmds = per_host(hosts) if i.zero?
          ours << t
          running = "app-web-#{target}"
          unless KAMAL.empty?
            target = target == "v1" ? "v2" : "v1"
            t, kok = kamal(dir, "rollback", target)
            theirs << t
            running = "app-web-#{target}"
            rok &&= kok
          end
          f, fok = floor(hosts, running, target, i)
          floors << f
          running = "app-web-floor-#{i}"
          ok &&= rok && fok
        end
        # Each rollback and the floor after it run back to back, in the machine's load of the moment:
        # the ratio is the median of the pairs'.
        rows << { n: n, rtt: rtt, ours: median(ours), theirs: theirs.empty? ? nil : median(theirs), floor: median(floors),
                  ratio: median(ours.zip(floors).map { |o, f| o / f }), conns: conns, cmds: cmds, ok: ok }
        warn "hosts=#{n} rtt=#{rtt}: kamal-rs #{ours.map { |t| t.round(2) }}, kamal #{theirs.map { |t| t.round(2) }}, floor #{floors.map { |t| t.round(2) }}"
      end
    end
  end
ensure
  Lab.down(quiet: true)
end

puts
puts "| hosts | RTT | Kamal rollback | kamal-rs rollback | floor | Kamal / kamal-rs | kamal-rs / floor (median of pairs) | SSH conns/host | remote cmds/host | ok |"
puts "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"
rows.each do |r|
  kamal = r[:theirs] ? format("%.2f s", r[:theirs]) : "-"
  speedup = r[:theirs] ? format("%.1f×", r[:theirs] / r[:ours]) : "-"
  puts format("| %d | %d ms | %s | %.2f s | %.2f s | %s | %.2f× | %d | %d | %s |", r[:n], r[:rtt], kamal, r[:ours], r[:floor],
    speedup, r[:ratio], r[:conns], r[:cmds], r[:ok] ? "yes" : "NO")
end
