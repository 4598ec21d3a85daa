# Resource benchmark (not a test): what one warm `kamal-rs redeploy` costs the machine that runs it, at
# N lab hosts. CPU (user+sys) and peak RSS come from /usr/bin/time (the ssh masters' handshakes are in
# the CPU: each master forks into the background only once authenticated); open files, threads and ssh
# processes are sampled every 0.1 s from /proc (the kamal-rs process and its descendants).
#
#   ruby bench/resources.rb [--hosts 16,64,128] [--rtt 50]        (as root; brings the lab up and down)
require "optparse"
require_relative "support"

counts = [ 16, 64, 128 ]
rtt = 50
OptionParser.new do |o|
  o.on("--hosts LIST") { |v| counts = v.split(",").map(&:to_i) }
  o.on("--rtt MS", Integer) { |v| rtt = v }
end.parse!

prepare_bench!
rows = []
begin
  counts.each do |n|
    hosts = lab_hosts(n, rtt)
    with_app(hosts) do |dir|
      _, ok = cold_deploy(dir)
      time_out = File.join(dir, "time.txt")
      env = { "RUBYLIB" => File.join(KAMAL_RS_ROOT, "lib") }
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      pid = Process.spawn(env, "/usr/bin/time", "-o", time_out, "-f", "%U %S %M", RbConfig.ruby,
                          File.join(KAMAL_RS_ROOT, "exe", "kamal-rs"), "redeploy", "-P", "--version", fresh_version("v2"), "-q",
                          chdir: dir, out: File::NULL, err: File::NULL)
      # kamal-rs's ControlPath sockets live under its run directory in the system temp dir.
      peak, rok = sample(pid, "kamal-rs")
      wall = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
      user, sys, rss_kb = File.read(time_out).split.last(3).map(&:to_f)
      rows << { n: n, wall: wall, cpu: user + sys, rss: rss_kb / 1024, **peak, ok: ok && rok }
      warn rows.last.inspect
    end
  end
ensure
  Lab.down(quiet: true)
end

puts
puts "| hosts | RTT | redeploy | CPU (user+sys) | peak RSS | open files (peak) | ssh processes (peak) | threads | ok |"
puts "|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"
rows.each do |r|
  puts format("| %d | %d ms | %.2f s | %.2f s | %.0f MB | %d | %d | %d | %s |", r[:n], rtt, r[:wall], r[:cpu], r[:rss], r[:fds], r[:ssh],
    r[:threads], r[:ok] ? "yes" : "NO")
end
