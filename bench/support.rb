# What the benchmarks share: the app's config for N lab hosts, timing, running a kamal_rs checkout.
require "open3"
require_relative "../test/lab/lab"

ROOT = File.expand_path("..", __dir__)
# KAMAL_RS_ROOT=/path/to/other/checkout times that checkout's kamal-rs (its lib/ with its built extension).
KAMAL_RS_ROOT = ENV.fetch("KAMAL_RS_ROOT", ROOT)

def config_for(hosts)
  Lab.app_config(hosts)
end

def median(values)
  values.sort[values.size / 2]
end

def timed
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  ok = yield
  [ Process.clock_gettime(Process::CLOCK_MONOTONIC) - t, ok ]
end

def kamal_rs(dir, *args)
  timed do
    out, status = Open3.capture2e({ "RUBYLIB" => File.join(KAMAL_RS_ROOT, "lib") }, RbConfig.ruby,
                                  File.join(KAMAL_RS_ROOT, "exe", "kamal-rs"), *args, "-q", chdir: dir)
    warn out unless status.success?
    status.success?
  end
end

# [most SSH connections on one host, most remote commands on one host] since the transcripts were reset.
def per_host(hosts)
  lines = hosts.map { |h| Lab.transcript(h) }
  [ lines.map { |l| l.map { |e| e[:client] }.uniq.size }.max, lines.map(&:size).max ]
end
