require "test_helper"
require "open3"
require "timeout"
require "tmpdir"
require "securerandom"
require_relative "lab_helpers"
require_relative "lab/faults"

# Faults injected into a rollout on four lab hosts (web with kamal-proxy on h1–h3, workers on h4): a
# host unreachable or going silent, sshd or dockerd killed, the registry stopped or black-holed, an
# unhealthy version, two runs at once, SIGINT/SIGTERM. Each run must end with its exit status, an error
# line naming the host, per-host lines that say what each host really serves, the lock released, no
# stray container or ssh master, no hang; then a plain redeploy recovers. Each test notes its time to
# fail in FAULTS_TABLE (the table of the closing note).
class FaultsTest < Minitest::Test
  include LabHelpers

  WEB = %w[10.213.0.11 10.213.0.12 10.213.0.13].freeze
  WORKER = "10.213.0.14".freeze
  HOSTS = (WEB + [ WORKER ]).freeze
  LOCK = ".kamal/lock-app".freeze
  TABLE = ENV.fetch("FAULTS_TABLE", File.join(Dir.tmpdir, "kamal-rs-faults.md"))
  SECRET = "s3cr3t-#{SecureRandom.hex(4)}".freeze

  def self.app
    @app ||= begin
      LabHelpers.fresh_lab(4)
      File.write(TABLE, "| fault | exit | what kamal_rs printed | hosts serve after | lock | time to fail |\n|---|---:|---|---|---|---:|\n")
      dir = Dir.mktmpdir("faults-app")
      Minitest.after_run { FileUtils.rm_rf(dir) }
      FileUtils.mkdir_p(File.join(dir, "config"))
      FileUtils.mkdir_p(File.join(dir, ".kamal"))
      File.write(File.join(dir, ".kamal", "secrets"), "DB_PASSWORD=#{SECRET}\nREGISTRY_PASSWORD=lab\n")
      write_config(dir, Lab::REGISTRY)
      dir
    end
  end

  def self.write_config(dir, registry)
    File.write(File.join(dir, "config", "deploy.yml"), <<~YAML)
      service: app
      image: app
      servers:
        web: [ #{WEB.join(", ")} ]
        workers: [ #{WORKER} ]
      registry: { server: "#{registry}", username: lab, password: [ REGISTRY_PASSWORD ] }
      env: { secret: [ DB_PASSWORD ] }
      builder: { arch: amd64 }
      deploy_timeout: 5
      readiness_delay: 0
      ssh: { keys: [ #{Lab::KEY} ], config: #{Lab::SSH_CONFIG} }
    YAML
  end

  def setup
    require_root
    @app = self.class.app
    Lab::Faults.heal_all
    given_deployed(web: WEB) { given_serving("v1") }
  end

  def teardown
    return unless @app

    Lab::Faults.heal_all
    self.class.write_config(@app, Lab::REGISTRY)
    remote(WEB[0], "rm -rf #{LOCK}")
  end

  def test_01_first_deploy
    status, out, = kamal_rs("deploy", "-P", "--version", "v1")
    assert_equal 0, status, out
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
  end

  def test_02_a_host_unreachable_from_the_start_touches_nothing
    given_serving("v1")
    Lab::Faults.partition("h2")
    status, out, secs = kamal_rs("redeploy", "-P", "--version", "v2")
    assert_equal 1, status, out
    assert_includes out, "ERROR (KamalRs::ConnectionError): Exception while executing on host 10.213.0.12: could not connect: connection timed out after 30 s"
    assert_operator secs, :<, 40, "fails within the connect timeout"
    Lab::Faults.heal("h2")
    assert_serving("v1")
    assert_no_lock_and_no_masters
    note("a host unreachable from the start (packets dropped)", status, out, "v1 everywhere", secs)
  end

  def test_03_sshd_down_from_the_start_is_refused
    given_serving("v1")
    Lab::Faults.kill_sshd("h2")
    status, out, secs = kamal_rs("redeploy", "-P", "--version", "v2")
    assert_equal 1, status, out
    assert_includes out, "Exception while executing on host 10.213.0.12: could not connect: connection refused"
    assert_serving("v1")
    assert_no_lock_and_no_masters
    note("sshd down on h2 from the start", status, out, "v1 everywhere", secs)
  end

  # The pulls go through a relay that answers after 2 s, so the fault lands while every host pulls.
  def test_04_a_host_going_silent_mid_rollout_stops_every_boot
    given_serving("v1")
    status, out, secs = slow_registry do
      run_with(-> { wait_for_pulls(WEB) && Lab::Faults.partition("h2") }, "redeploy", "-P", "--version", "v2")
    end
    Lab::Faults.heal("h2")
    assert_equal 1, status, out
    assert_match(/Exception while executing on host 10\.213\.0\.12: connection lost/, out)
    assert_truthful_summary(out, "v1")
    assert_serving("v1")
    assert_no_lock_and_no_masters
    note("h2 stops answering while pulling", status, out, "v1 everywhere", secs)
  end

  def test_05_sshd_killed_mid_rollout_stops_every_boot
    given_serving("v1")
    status, out, secs = slow_registry do
      run_with(-> { wait_for_pulls(WEB) && Lab::Faults.kill_sshd("h2") }, "redeploy", "-P", "--version", "v2")
    end
    assert_equal 1, status, out
    assert_match(/Exception while executing on host 10\.213\.0\.12: connection lost/, out)
    refute_includes out, "Failed to boot web on 10.213.0.12", "the connection died, not the boot"
    assert_truthful_summary(out, "v1")
    assert_serving("v1")
    assert_no_lock_and_no_masters
    note("sshd killed on h2 while pulling", status, out, "v1 everywhere", secs)
  end

  def test_06_dockerd_stopped_on_one_host_stops_every_boot
    given_serving("v1")
    Lab::Faults.stop_dockerd("h2")
    status, out, secs = kamal_rs("redeploy", "-P", "--version", "v2")
    assert_equal 1, status, out
    assert_includes out, "Exception while executing on host 10.213.0.12: docker exit status"
    assert_includes out, "10.213.0.12: web: not booted, running version unknown (could not check: docker:"
    [ WEB[0], WEB[2] ].each { |ip| assert_equal "app v1\n", http_get(ip) }
    Lab::Faults.start_dockerd("h2")
    Lab.wait_until(what: "h2 serving v1 again", timeout: 30, saw: -> { http_get(WEB[1]).inspect }) { http_get(WEB[1]) == "app v1\n" }
    assert_serving("v1")
    assert_no_lock_and_no_masters
    note("dockerd stopped on h2", status, out, "v1 on h1, h3, h4 (h2 back on v1 with dockerd)", secs)
  end

  def test_07_the_registry_stopped_changes_nothing
    given_serving("v1")
    Lab::Faults.stop_registry
    status, out, secs = kamal_rs("redeploy", "-P", "--version", "v2")
    Lab::Faults.start_registry
    assert_equal 1, status, out
    assert_match(/Exception while executing on host 10\.213\.0\.1[1-4]: docker exit status/, out)
    assert_truthful_summary(out, "v1")
    assert_serving("v1")
    assert_no_lock_and_no_masters
    note("the registry stopped", status, out, "v1 everywhere", secs)
  end

  def test_08_ctrl_c_during_a_hung_pull_is_answered_at_once
    given_serving("v1")
    Lab::Faults.blackhole_registry("h3")
    interrupted_at = nil
    status, out, = run_with(lambda {
      wait_for_pulls([ WEB[2] ])
      # The pull has hung for a second (the black hole answers nothing) when Ctrl-C comes.
      pull = -> { Lab.transcript(WEB[2]).find { |c| c[:command].include?("docker pull") && c[:ended].nil? } }
      Lab.wait_until(what: "h3's pull hanging for 1 s", timeout: 30, saw: -> { pull.call.inspect }) do
        (started = pull.call&.dig(:time)) && Time.now.to_f - started >= 1
      end
      interrupted_at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      "INT"
    }, "redeploy", "-P", "--version", "v2")
    answered = Process.clock_gettime(Process::CLOCK_MONOTONIC) - interrupted_at
    assert_equal 130, status, out
    assert_operator answered, :<, 8, "Ctrl-C answered in #{answered.round(1)} s"
    assert_includes out, "ERROR (Interrupt): stopped by SIGINT; the deploy lock was released"
    assert_truthful_summary(out, "v1")
    assert_serving("v1")
    # (The hosts share this machine's process table: the docker CLI's own processes are looked for.)
    assert_equal "", remote(WEB[2], "pgrep -a -x docker | grep ' pull ' || true").first, "the hung pull was stopped"
    assert_no_lock_and_no_masters
    note("Ctrl-C while h3's pull hangs (registry black-holed)", status, out, "v1 everywhere", answered, "after Ctrl-C")
  end

  def test_09_an_unhealthy_version_keeps_the_old_one
    given_serving("v1")
    status, out, secs = kamal_rs("redeploy", "-P", "--version", "unhealthy")
    assert_equal 1, status, out
    assert_includes out, "target failed to become healthy"
    assert_includes out, "Exception while executing on host 10.213.0.14: Halted at barrier"
    assert_truthful_summary(out, "v1")
    assert_serving("v1")
    assert_no_lock_and_no_masters
    note("an unhealthy version", status, out, "v1 everywhere", secs)
  end

  def test_10_two_runs_at_once_one_wins
    runs = 2.times.map { Thread.new { kamal_rs("redeploy", "-P", "--version", "v2") } }.map(&:value)
    statuses = runs.map(&:first).sort
    assert_equal [ 0, 1 ], statuses, runs.map { |r| r[1] }.join("\n----\n")
    loser = runs.find { |r| r.first == 1 }[1]
    assert_includes loser, "Deploy lock already in place!"
    assert_serving("v2")
    assert_no_lock_and_no_masters
    note("two redeploys at once", 1, loser, "v2 everywhere (the winner's)", runs.find { |r| r.first == 1 }[2])
  end

  def test_11_sigint_the_instant_the_lock_is_taken
    given_serving("v2")
    status, out, = run_with(lambda {
      Lab.wait_until(what: "the lock taken", timeout: 30) { Lab.transcript(WEB[0]).any? { |c| c[:command].include?("mkdir .kamal/lock-app") } }
      "INT"
    }, "redeploy", "-P", "--version", "v1")
    assert_equal 130, status, out
    assert_truthful_summary(out, "v2")
    assert_serving("v2")
    assert_no_lock_and_no_masters
    note("Ctrl-C the instant the lock is taken", status, out, "v2 everywhere", nil)
  end

  def test_12_sigterm_during_the_boot_reports_each_host_truly
    given_serving("v2")
    status, out, = run_with(lambda {
      # The first new container exists: the boots have begun.
      Lab.wait_until(what: "a new v1 container running", timeout: 30) do
        WEB.any? { |ip| !docker(ip, "ps -q --filter name=app-web-v1 --filter status=running").strip.empty? }
      end
      "TERM"
    }, "redeploy", "-P", "--version", "v1")
    assert_equal 143, status, out
    assert_includes out, "ERROR (Interrupt): stopped by SIGTERM; the deploy lock was released"
    assert_truthful_summary(out, nil)
    assert_no_lock_and_no_masters
    note("SIGTERM during the boot", status, out, "each host as its line says", nil)
  end

  def test_13_a_plain_redeploy_recovers_and_no_secret_is_printed
    status, out, = kamal_rs("redeploy", "-P", "--version", "v2", "-v")
    assert_equal 0, status, out
    assert_serving("v2")
    refute_includes out, SECRET, "a secret in the output"
    assert_includes out, "--env-file .kamal/apps/app/env/roles/web.env"
    assert_equal "DB_PASSWORD=#{SECRET}\n", remote(WEB[0], "cat .kamal/apps/app/env/roles/web.env").first
    assert_no_lock_and_no_masters
  end

  private
    def given_serving(version)
      super(version, web: WEB, hosts: HOSTS) do |v|
        status, out, = kamal_rs("deploy", "-P", "--version", v)
        assert_equal 0, status, "setting the lab up: deploy #{v}:\n#{out}"
      end
    end

    def kamal_rs(*args)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      out, status = Timeout.timeout(180) do
        Open3.capture2e({ "RUBYLIB" => File.join(ROOT, "lib") }, RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), *args, chdir: @app)
      end
      refute_includes out, SECRET, "a secret in the output"
      [ status.exitstatus, out, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started ]
    end

    # Runs kamal-rs while `during` injects a fault (its result, "INT" or "TERM", is a signal to send).
    def run_with(during, *args)
      Lab.reset_transcripts
      reader, writer = IO.pipe
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      pid = spawn({ "RUBYLIB" => File.join(ROOT, "lib") }, RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), *args,
                  chdir: @app, out: writer, err: writer)
      writer.close
      output = Thread.new { reader.read }
      signal = during.call
      Process.kill(signal, pid) if signal.is_a?(String)
      _, status = Timeout.timeout(120) { Process.wait2(pid) }
      out = output.value
      refute_includes out, SECRET, "a secret in the output"
      [ status.exitstatus, out, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started ]
    ensure
      Process.kill("KILL", pid) rescue nil if pid && !status
    end

    # Pulls through a relay on this machine that answers after 2 s (a `localhost` registry).
    def slow_registry(&block)
      self.class.write_config(@app, "localhost:5757")
      with_registry_relay(delay: 2, &block)
    ensure
      self.class.write_config(@app, Lab::REGISTRY)
    end

    def wait_for_pulls(ips)
      pulling = ->(ip) { Lab.transcript(ip).any? { |c| c[:command].include?("docker pull") && c[:ended].nil? } }
      # Said on a timeout: what each host not pulling ran instead.
      ran = -> { ips.reject(&pulling).map { |ip| "#{ip}: #{Lab.transcript(ip).map { |c| [ c[:command][0, 80], c[:ended] ] }.inspect}" }.join("; ") }
      Lab.wait_until(what: "a pull in progress on #{ips.join(", ")}", timeout: 60, saw: ran) { ips.all?(&pulling) }
      true
    end

    # Every web host serves `version`, and the workers host runs it.
    def assert_serving(version)
      WEB.each { |ip| assert_equal "app #{version}\n", http_get(ip), "#{ip} serves" }
      assert_equal "app-workers-#{version}", docker(WORKER, "ps --format '{{.Names}}' --filter label=role=workers").strip
    end

    # Each per-host line says what the host really runs; `all` (when given) is what every host runs.
    def assert_truthful_summary(out, all)
      HOSTS.each do |ip|
        line = out[/^  (?:\e\[31m)?#{Regexp.escape(ip)}: (.*?)(?:\e\[0m)?$/, 1]
        next unless line

        running = docker(ip, "ps --format '{{.Names}}' --filter label=service=app").split
        line.split("; ").each do |part|
          role, what = part.split(": ", 2)
          version = running.grep(/^app-#{role}-/).map { |n| n.delete_prefix("app-#{role}-") }.first
          case what
          when /new version (\S+) live/ then assert_equal $1, version, "#{ip} #{role}: #{line}"
          when /old version (\S+) still serving/ then assert_equal $1, version, "#{ip} #{role}: #{line}"
          when /no previous version/ then assert_nil version, "#{ip} #{role}: #{line}"
          end
          assert_equal all, version, "#{ip} #{role}" if all && what !~ /unknown/
        end
      end
    end

    def assert_no_lock_and_no_masters
      assert_equal "", remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first, "lock released"
      masters, = Open3.capture2("pgrep", "-af", "kamal-rs-[0-9]+-[0-9a-f]{8}/")
      assert_equal "", masters, "ssh masters left"
      assert_empty Dir.glob(File.join(Dir.tmpdir, "kamal-rs-*")).grep(/kamal-rs-\d+-\h{8}\z/), "run directories left"
    end

    def note(fault, status, out, served, secs, unit = "")
      lines = out.lines.map { |l| l.gsub(/\e\[\d+m/, "").strip }
      printed = (lines.grep(/^ERROR \(/).first(1) + lines.grep(/^10\.213\.0\.\d+: (web|workers): /))
                .map { |l| l.gsub("|", "\\|") }.join("<br>")
      lock = remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first.empty? ? "released" : "HELD"
      time = secs ? format("%.1f s%s", secs, unit.empty? ? "" : " #{unit}") : "—"
      File.write(TABLE, "| #{fault} | #{status} | #{printed} | #{served} | #{lock} | #{time} |\n", mode: "a")
    end
end
