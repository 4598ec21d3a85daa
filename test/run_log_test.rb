require "test_helper"
require "json"
require "json-schema"
require "open3"
require "tmpdir"
require_relative "lab_helpers"

# What a run tells, on three lab hosts at 50 ms RTT: the -v log with each command's own time and
# status as it happens, Kamal 2.12's `output:` file and OpenTelemetry logs beside Ruby Kamal's on the
# same hosts (a real OTLP/HTTP receiver decodes both), the GitHub Actions summary, the events file
# against its schema, and the timeline picture rendered to PNG.
class RunLogTest < Minitest::Test
  include LabHelpers

  HOSTS = %w[10.213.0.11 10.213.0.12 10.213.0.13].freeze
  RUNNING = /\A\s*(?:INFO|DEBUG) \[(\h{8})\] Running (.*) on (\S+)\z/m
  FINISHED = /^\s*(?:INFO|DEBUG) \[(\h{8})\] Finished in ([\d.]+) seconds with exit status (\d+) \((successful|failed)\)\.$/

  def self.app
    @app ||= begin
      LabHelpers.fresh_lab(3, rtt: 50)
      dir = LabHelpers.app_dir("run-log-app", HOSTS)
      # Kamal names the performer from git.
      system("git init -q && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m app", chdir: dir, exception: true)
      dir
    end
  end

  def setup
    require_root
    @app = self.class.app
    given_deployed(web: HOSTS) { assert_equal 0, run_kamal_rs(@app, "deploy", "-P", "--version", "v1", "-q").first }
  end

  def test_01_each_command_is_logged_with_its_own_time_as_it_happens
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    status, out = run_kamal_rs(@app, "deploy", "-P", "--version", "v1", "-v")
    wall = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    assert_equal 0, status, out
    log = parse(out)
    HOSTS.each do |host|
      pull, run, deploy = [ "docker pull 10.213.0.1:5000/app:v1", "docker run --detach", "kamal-proxy deploy app-web" ]
                          .map { |c| log.command(host, c) }
      times = [ pull, run, deploy ].map { |c| c[:seconds] }
      assert_equal 3, times.uniq.size, "#{host}: each command its own duration: #{times}"
      assert_operator times.sum, :<=, wall, host
      assert_operator pull[:finished_at], :<, run[:started_at], "#{host}: the pull finished before docker run started"
      [ pull, run, deploy ].each { |c| assert_equal [ 0, "successful" ], [ c[:status], c[:verdict] ] }
    end
    {
      "Acquiring the deploy lock..." => "mkdir .kamal/lock-app",
      "Ensure kamal-proxy is running..." => "docker inspect kamal-proxy",
      "Detect stale containers..." => "docker ps -a --filter label=service=app",
      "Start container with version v1 (or reboot if already running)..." => "docker run --detach",
      "Prune old containers and images..." => "docker image prune",
      "Releasing the deploy lock..." => "rm .kamal/lock-app/details"
    }.each do |header, command|
      heading = log.lines.index(header)
      first = log.running.select { |r| r[:command].include?(command) }.map { |r| r[:at] }.min
      assert heading, "#{header} printed"
      assert first, "#{command} run"
      assert_operator heading, :<, first, "#{header} before its first command"
      assert_equal 1, log.lines.count(header), "#{header} printed once"
    end
    log.finished.each { |f| assert log.by_uuid[f[:uuid]], "a Finished line whose Running line is missing: #{f}" }
    HOSTS.each { |ip| assert_equal "app v1\n", http_get(ip) }
  end

  # kamal-proxy stopped on one host: its `kamal-proxy deploy` fails with docker's own status and its
  # script stops there; the other hosts' new containers serve, untagged, and the lock is released.
  def test_02_a_failed_boot_shows_the_real_exit_status_and_nothing_after_it
    given_serving("v1", web: HOSTS) { |v| assert_equal 0, run_kamal_rs(@app, "deploy", "-P", "--version", v, "-q").first }
    failing = HOSTS[1]
    docker(failing, "stop kamal-proxy")
    Dir.mktmpdir("run-log-out") do |tmp|
      status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2", "-v",
                                 "--events", File.join(tmp, "events.jsonl"),
                                 env: { "GITHUB_ACTIONS" => "true", "GITHUB_STEP_SUMMARY" => File.join(tmp, "summary.md") })
      assert_equal 1, status, out
      log = parse(out)
      deploy = log.command(failing, "kamal-proxy deploy app-web")
      assert_equal [ 1, "failed" ], [ deploy[:status], deploy[:verdict] ], out
      stop_old = log.running.find { |r| r[:host] == failing && r[:command] == %(docker stop "app-web-v1") }
      assert_nil stop_old, "the old container is not stopped after a failed deploy"
      refute log.running.any? { |r| r[:host] == failing && r[:command].start_with?("docker tag") }
      # After it, only what Kamal does on a failed boot: the new container's logs and health (when it is
      # the primary role's first result), then its stop.
      after = log.running.select { |r| r[:host] == failing && r[:at] > deploy[:finished_at] }.map { |r| r[:command] }
      assert after.all? { |c| c.match?(/xargs docker (logs|inspect --format '\{\{json .State.Health\}\}'|stop)/) }, after.inspect
      assert after.last.end_with?("xargs docker stop"), after.inspect
      assert_includes out, "#{failing}: web: boot failed, old version v1 still serving"
      assert_includes out, "::error title=kamal-rs redeploy failed on #{failing}::web: boot failed"

      events = File.readlines(File.join(tmp, "events.jsonl")).map { |l| JSON.parse(l) }
      health = events.find { |e| e["event"] == "step_end" && e["host"] == failing && e["step"] == "health" }
      assert_equal [ "failed", "web" ], [ health["status"], health["role"] ], events.select { |e| e["host"] == failing }.inspect
      assert_equal "failed", events.last["status"]
      summary = File.read(File.join(tmp, "summary.md"))
      assert_match(/\| #{Regexp.escape(failing)} \| web \| ❌ failed/, summary)
    end
  ensure
    docker(failing, "start kamal-proxy") if failing
    run_kamal_rs(@app, "redeploy", "-P", "--version", "v1") if failing
  end

  def test_03_github_summary_events_file_and_timeline_picture
    given_serving("v1", web: HOSTS) { |v| assert_equal 0, run_kamal_rs(@app, "deploy", "-P", "--version", v, "-q").first }
    Dir.mktmpdir("run-log-out") do |tmp|
      summary, events, svg = %w[summary.md events.jsonl timeline.svg].map { |f| File.join(tmp, f) }
      status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2", "--events", events, "--timeline", svg,
                                 env: { "GITHUB_ACTIONS" => "true", "GITHUB_STEP_SUMMARY" => summary })
      assert_equal 0, status, out

      md = File.read(summary)
      assert_match(/\A### ✅ kamal-rs redeploy v2 succeeded in \d+\.\d s/, md)
      assert_includes md, "Deploy lock on #{HOSTS[0]}: taken and released."
      HOSTS.each { |h| assert_match(/^\| #{Regexp.escape(h)} \| web \| ✅ live \| v2 \(was v1\) \| [\d.]+ s \|/, md) }
      groups = out.scan(/^::group::(\S+): web: new version v2 live\n(.*?)^::endgroup::$/m)
      assert_equal HOSTS, groups.map(&:first)
      groups.each { |host, body| assert_match(/Running docker run .* on #{Regexp.escape(host)}$/, body) }

      schema = JSON.parse(File.read(KamalRs::EVENTS_SCHEMA))
      lines = File.readlines(events)
      lines.each { |line| assert_empty JSON::Validator.fully_validate(schema, line), line }
      parsed = lines.map { |l| JSON.parse(l) }
      assert_equal %w[run_start run_end], [ parsed.first["event"], parsed.last["event"] ]
      HOSTS.each do |h|
        steps = parsed.select { |e| e["event"] == "step_end" && e["host"] == h }
        assert_equal %w[boot connect health pull], (steps.map { |e| e["step"] } & %w[connect pull boot health]).sort, h
        assert steps.all? { |e| e["status"] == "ok" }
        starts = parsed.count { |e| e["event"] == "step_start" && e["host"] == h }
        assert_equal steps.size, starts, "#{h}: every step that started ended"
      end

      picture = File.read(svg)
      assert_equal 3, picture.scan('class="host-row"').size
      HOSTS.each { |h| assert_includes picture, %(data-host="#{h}") }
      png = File.join(tmp, "timeline.png")
      system("rsvg-convert", "-o", png, svg, exception: true)
      assert_equal "\x89PNG".b, File.binread(png, 4)
      assert_operator File.size(png), :>, 5_000
    end
  end

  # Ruby Kamal 2.12 then kamal-rs redeploy the same hosts with the same `output:` section; a real
  # OTLP/HTTP receiver (OpenTelemetry's own message types) decodes what each sends.
  def test_04_output_file_and_otel_as_ruby_kamal_writes_them
    require_ruby_kamal
    runs = { kamal: [ *ruby_kamal ], kamal_rs: [ RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs") ] }.to_h do |tool, command|
      with_otlp_receiver do |url, received|
        with_output_config(file: "log/#{tool}", otel: url) do
          env = { "RUBYLIB" => File.join(ROOT, "lib") }
          out, status = Timeout.timeout(180) { Open3.capture2e(env, *command, "redeploy", "-P", "--version", "v1", chdir: @app) }
          assert status.success?, "#{tool}:\n#{out}"
          files = Dir[File.join(@app, "log", tool.to_s, "*")]
          assert_equal 1, files.size, "#{tool}: one file per run"
          requests = Dir[File.join(received, "*")].sort.to_h { |f| [ File.basename(f), File.read(f) ] }
          [ tool, { out: out, file: files.first, requests: requests } ]
        end
      end
    end
    runs.each do |tool, run|
      name = File.basename(run[:file])
      assert_match(/\A\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d_redeploy\.log\z/, name, tool)
      assert_match(/\A# Completed in \d+\.\d+s\z/, File.readlines(run[:file]).last.chomp, tool)
      assert_includes run[:out], "Logs written to log/#{tool}/#{name}", tool
      assert_match(%r{^Logs sent to http://127\.0\.0\.1:\d+$}, run[:out], tool)
      assert run[:requests].any?, "#{tool}: sent something"
      assert run[:requests].keys.all? { |f| f.end_with?(".json") }, "#{tool}: every request is valid OTLP: #{run[:requests].keys}"
    end
    kamal, ours = runs.values_at(:kamal, :kamal_rs).map { |r| otlp_shape(r[:requests]) }
    assert_equal kamal[:resource_keys], ours[:resource_keys]
    assert_equal kamal[:scope], ours[:scope]
    assert_equal kamal[:events], ours[:events]
    assert_equal kamal[:event_attributes], ours[:event_attributes]
    assert_empty ours[:kinds] - kamal[:kinds], "record kinds Kamal does not send"
    assert_empty kamal[:kinds] - ours[:kinds], "record kinds Kamal sends and kamal-rs does not"
    # Both files hold the -v lines (Kamal's loggers get every message); neither holds a secret.
    [ runs[:kamal][:file], runs[:kamal_rs][:file] ].each do |f|
      text = File.read(f)
      assert_match(/^ DEBUG \[\h{8}\] Command: docker pull/, text, f)
      refute_match(/-p "?lab"?\b/, text, f)
    end
  end

  def test_05_an_endpoint_that_is_down_or_slow_costs_at_most_a_few_seconds
    usual = timed { assert_equal 0, run_kamal_rs(@app, "redeploy", "-P", "--version", "v2").first }
    closed = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
    out = nil
    down = timed do
      with_output_config(otel: "http://127.0.0.1:#{closed}") do
        status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v1")
        assert_equal 0, status, out
      end
    end
    assert_operator down, :<, usual + 5, "a closed endpoint: #{down} s against #{usual} s"
    assert_equal 1, out.scan("OTel log shipping failed").size, out
    slow = nil
    with_otlp_receiver(delay: 30) do |url, _|
      slow = timed do
        with_output_config(otel: url) do
          status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2")
          assert_equal 0, status, out
        end
      end
    end
    assert_operator slow, :<, usual + 5, "an endpoint that never answers: #{slow} s against #{usual} s"
    HOSTS.each { |ip| assert_equal "app v2\n", http_get(ip) }
  end

  private
    Log = Struct.new(:lines, :running, :finished, :by_uuid) do
      # A command on a host: its start and end line numbers, seconds and status.
      def command(host, text)
        r = running.find { |x| x[:host] == host && x[:command].include?(text) } or raise "no #{text} on #{host}"
        f = finished.find { |x| x[:uuid] == r[:uuid] } or raise "no Finished for #{text} on #{host}"
        { started_at: r[:at], finished_at: f[:at], seconds: f[:seconds], status: f[:status], verdict: f[:verdict] }
      end
    end

    # A command shown on several lines (the lock's details) is joined back into its Running line.
    # GitHub Actions' per-host groups, which repeat each host's lines, are left out.
    def parse(out)
      lines = out.split(/^::group::/).first.lines.map(&:chomp)
      running, finished = [], []
      lines.each_with_index do |line, i|
        if line.match?(/\] Running /) && !line.match?(RUNNING)
          rest = lines[(i + 1)..].index { |l| l.match?(/ on \S+$/) }
          line = ([ line ] + lines[(i + 1)..(i + 1 + rest.to_i)]).join("\n") if rest
        end
        if (m = RUNNING.match(line))
          running << { uuid: m[1], command: m[2], host: m[3], at: i }
        elsif (m = FINISHED.match(line))
          finished << { uuid: m[1], seconds: m[2].to_f, status: m[3].to_i, verdict: m[4], at: i }
        end
      end
      Log.new(lines, running, finished, running.to_h { |r| [ r[:uuid], r ] })
    end

    def timed
      t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      yield
      Process.clock_gettime(Process::CLOCK_MONOTONIC) - t
    end

    # The app's config with an `output:` section for the block.
    def with_output_config(file: nil, otel: nil)
      path = File.join(@app, "config", "deploy.yml")
      original = File.read(path)
      section = +"output:\n"
      section << "  file:\n    path: #{file}\n" if file
      section << "  otel:\n    endpoint: #{otel}\n" if otel
      File.write(path, original + section)
      yield
    ensure
      File.write(path, original) if original
    end

    # What a run's OTLP requests say, times and ids aside.
    def otlp_shape(requests)
      bodies = requests.values.map { |body| JSON.parse(body) }
      resources = bodies.flat_map { |b| b["resourceLogs"] }
      scopes = resources.flat_map { |r| r["scopeLogs"] }
      records = scopes.flat_map { |s| s["logRecords"] }
      events = records.select { |r| r["eventName"] }
      {
        resource_keys: resources.map { |r| r["resource"]["attributes"].map { |a| a["key"] } }.uniq,
        scope: scopes.map { |s| s["scope"] }.uniq,
        events: events.map { |r| r["eventName"] },
        event_attributes: events.to_h { |r| [ r["eventName"], r["attributes"].map { |a| a["key"] } ] },
        kinds: records.reject { |r| r["eventName"] }
                      .map { |r| [ r["severityText"], r["severityNumber"], (r["attributes"] || []).map { |a| a["key"] } ] }.uniq.sort
      }
    end
end
