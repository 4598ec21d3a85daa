require "test_helper"
require "json"
require "time"
require "tmpdir"
require_relative "lab_helpers"

# A panic in the core mid-deploy (forced by the test build's fault-injection hook, KAMAL_RS_TEST_PANIC)
# ends the run as an internal error, at once, as any failure ends: the lock released, each host's line
# printed, the old version serving; never a hang of the Ruby process or a crash.
class PanicTest < Minitest::Test
  include LabHelpers

  HOSTS = %w[10.213.0.11 10.213.0.12].freeze
  LOCK = ".kamal/lock-app".freeze
  PANIC = %r{internal error: kamal_rs panicked: fault injected at locked on 10\.213\.0\.11 at crates/kamal_rs_core/src/runner/rollout\.rs:\d+:\d+}

  def self.app
    @app ||= begin
      LabHelpers.fresh_lab(2)
      LabHelpers.app_dir("panic-app", HOSTS)
    end
  end

  def setup
    require_root
    @app = self.class.app
    given_serving("v1", web: HOSTS) do |version|
      status, out = run_kamal_rs(@app, "deploy", "-P", "--version", version, "-q")
      assert_equal 0, status, "setting the lab up: deploy #{version}:\n#{out}"
    end
  end

  def test_a_panic_mid_deploy_is_an_internal_error_with_the_lock_released
    Dir.mktmpdir("panic-events") do |tmp|
      events = File.join(tmp, "events.jsonl")
      status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2", "--events", events,
                                 env: { "KAMAL_RS_TEST_PANIC" => "locked" }, timeout: 60)
      assert_equal 1, status, out
      assert_match(/ERROR \(KamalRs::InternalError\): #{PANIC}/, out)
      HOSTS.each { |ip| assert_match(/^  (\e\[\d+m)?#{Regexp.escape(ip)}: web: .*v1/, out, "#{ip}'s line") }
      assert_equal "", remote(HOSTS[0], "ls -d #{LOCK} 2>/dev/null").first, "lock released"
      HOSTS.each { |ip| assert_equal "app v1\n", http_get(ip), "#{ip}: the old version serves" }

      # From the panic (no host step after it) to the end of the run, lock release included.
      lines = File.readlines(events).map { |l| JSON.parse(l) }
      ended = lines.find { |e| e["event"] == "run_end" }
      assert_equal "failed", ended["status"]
      last_step = lines.select { |e| e["event"].start_with?("step_") }.map { |e| Time.parse(e["time"]) }.max
      seconds = Time.parse(ended["time"]) - last_step
      assert_operator seconds, :<, 1.0, "the run ended #{seconds.round(2)} s after the last step before the panic"
    end
  end

  def test_through_the_ruby_api_a_panic_raises_kamal_rs_internal_error
    ENV["KAMAL_RS_TEST_PANIC"] = "locked"
    error = Dir.chdir(@app) do
      assert_raises(KamalRs::InternalError) { KamalRs.redeploy(version: "v2", skip_push: true, quiet: true) }
    end
    assert_kind_of KamalRs::Error, error
    assert_match PANIC, error.message
    assert_equal HOSTS, error.result.hosts.map { |h| h[:host] }
    assert_equal :released, error.result.lock
    assert_equal "", remote(HOSTS[0], "ls -d #{LOCK} 2>/dev/null").first, "lock released"
    HOSTS.each { |ip| assert_equal "app v1\n", http_get(ip) }
  ensure
    ENV.delete("KAMAL_RS_TEST_PANIC")
  end
end
