# What a run does to live traffic: lab-traffic (test/lab/tools/src/bin/lab-traffic.rs) sends a steady
# stream of requests to every web host's kamal-proxy (a new connection each, a deadline each) while a
# block runs, and Traffic.during reads back every request: how many, which failed (non-2xx, resets,
# timeouts), the latencies, and when each host switched version (the app's /version says which answered).
# Used by bench/traffic.rb and test/traffic_test.rb; only meaningful with the real kamal-proxy
# (script/install-kamal-proxy), since the stand-in relays TCP and neither checks nor drains.
require "open3"
require "tempfile"
require_relative "lab"

module Traffic
  BIN = File.join(Lab::TOOLS_BIN, "lab-traffic")

  Request = Struct.new(:host, :at, :latency, :outcome, :version, keyword_init: true) do
    def ok? = outcome.match?(/\A2\d\d\z/)
  end

  # When a host's answers went from `from` to `to`: `at`, the first answer from `to` (seconds after the
  # run started), `old_until`, the last answer from `from`.
  Switch = Struct.new(:host, :from, :to, :at, :old_until, keyword_init: true)

  Result = Struct.new(:requests, :seconds, keyword_init: true) do
    def failed = requests.reject(&:ok?)
    def latencies = requests.map(&:latency).sort

    def percentile(p)
      sorted = latencies
      return 0.0 if sorted.empty?

      sorted[[ (sorted.size * p / 100.0).ceil - 1, 0 ].max]
    end

    def max = latencies.last || 0.0

    # Per host, the version answering first and last, and when it changed (nil when it did not).
    def switches
      requests.group_by(&:host).sort.map do |host, reqs|
        answered = reqs.select(&:ok?).sort_by(&:at)
        from, to = answered.first&.version, answered.last&.version
        first_new = answered.find { |r| r.version == to && from != to }
        last_old = answered.reverse.find { |r| r.version == from && from != to }
        Switch.new(host: host, from: from, to: to, at: first_new&.at, old_until: last_old&.at)
      end
    end

    # The slowest requests, with where they fell: which host, when (seconds after the run started).
    def slowest(count = 3) = requests.max_by(count, &:latency)

    # What failed, grouped: `12 reset on 10.213.0.11 at 3.1-3.4 s`.
    def failure_summary
      failed.group_by { |r| [ r.outcome, r.host ] }.map do |(outcome, host), reqs|
        times = reqs.map(&:at).minmax
        format("%d %s on %s at %.1f-%.1f s", reqs.size, outcome, host, *times)
      end
    end
  end

  module_function

  def real_proxy? = Lab.real_kamal_proxy?

  # Runs the block while `rate` requests a second go to each of `hosts` (port 80); traffic starts
  # `lead` seconds before the block and goes on `tail` seconds after it. Returns [block's value,
  # Result]; request times are seconds after the block started (negative: before it).
  def during(hosts, rate: 100, deadline_ms: 10_000, max_seconds: 900, lead: 1.0, tail: 1.0)
    raise Lab::Error, "no #{BIN}: bring the lab up first (it builds test/lab/tools)" unless File.executable?(BIN)

    out = Tempfile.new("traffic")
    reader, writer = IO.pipe
    err = Tempfile.new("traffic-err")
    pid = Process.spawn(BIN, "--rate", rate.to_s, "--deadline-ms", deadline_ms.to_s, "--max-seconds", max_seconds.to_s,
                        out.path, *hosts, in: reader, err: err.path)
    reader.close
    traffic_started = now
    # A measurement window before the run, not a wait for a state: it shows the fleet serving before.
    sleep lead
    started = now
    value = begin
      yield
    ensure
      ended = now
      sleep tail
      writer.close
      Process.wait(pid)
    end
    raise Lab::Error, "lab-traffic failed: #{File.read(err.path)}" unless $?.success?

    offset = started - traffic_started
    requests = File.readlines(out.path).map do |line|
      host, at, latency, outcome, version = line.split(" ", 5)
      Request.new(host: host, at: at.to_f / 1000 - offset, latency: latency.to_f, outcome: outcome, version: version.to_s.strip)
    end
    [ value, Result.new(requests: requests, seconds: ended - started) ]
  ensure
    out&.close!
    err&.close!
  end

  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  # The table's row for one run.
  def row(tool, run, status, result)
    switched = result.switches.map { |s| s.at ? format("%.1f", s.at) : "-" }.join(" / ")
    format("| %s | %s | %s | %.1f s | %d | %d | %.0f ms | %.0f ms | %.0f ms | %s |", tool, run, status, result.seconds,
           result.requests.size, result.failed.size, result.percentile(50), result.percentile(99), result.max, switched)
  end

  HEADER = [
    "| tool | run | exit | run time | requests | failed | p50 | p99 | max | each host switched (s after start) |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
  ].freeze
end
