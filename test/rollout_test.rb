require "test_helper"
require "base64"
require "open3"
require "timeout"
require "tmpdir"
require_relative "lab_helpers"

# The per-host rollout (no pre-deploy/pre-app-boot hook, one boot group): the deploy app of
# deploy_test.rb without its hooks, on three lab hosts. The lock comes first, in the primary host's own
# script; then each web host pulls, boots kamal-proxy (deploy) and its container in one script, while
# the workers host (not the primary role) pulls at once and boots after the barrier.
class RolloutTest < Minitest::Test
  include LabHelpers

  WEB = %w[10.213.0.11 10.213.0.12].freeze
  WORKER = "10.213.0.13".freeze
  LOCK = ".kamal/lock-app-staging".freeze

  def self.app
    @app ||= begin
      LabHelpers.fresh_lab(3)
      dir = Dir.mktmpdir("rollout-app")
      Minitest.after_run { FileUtils.rm_rf(dir) }
      FileUtils.cp_r(File.join(FIXTURES, "deploy_app", "."), dir)
      FileUtils.rm_rf(File.join(dir, ".kamal", "hooks"))
      dir
    end
  end

  def setup
    require_root
    @app = self.class.app
    given_deployed(web: WEB) { given_serving("v1") }
  end

  def test_01_deploy_takes_the_lock_first_then_each_web_host_runs_one_script
    Lab.reset_transcripts
    status, out = kamal_rs("deploy", "-P", "-d", "staging", "--version", "v1")
    assert_equal 0, status, out
    assert_one_connection_per_host(WEB + [ WORKER ])
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
    assert_equal "app-workers-staging-v1 running", docker(WORKER, "ps --format '{{.Names}} {{.State}}' --filter label=role=workers").strip
    assert_operator out.index("Acquiring the deploy lock..."), :<, out.index("Detect stale containers...")
    assert_operator out.index("Detect stale containers..."), :<, out.index("Releasing the deploy lock...")

    primary, other = WEB.map { |ip| Lab.transcript(ip) }
    # The primary: the lock, then the pull, kamal-proxy and the boot, in this order, in its first command.
    first = primary.first[:command]
    steps = [ "mkdir .kamal/lock-app-staging", "docker pull 10.213.0.1:5000/app:v1", "docker network create kamal",
              "docker run --detach --restart unless-stopped --name app-web-staging-v1" ].map { |s| first.index(s) }
    assert steps.all?, first
    assert_equal steps.sort, steps, "lock, pull, proxy, boot out of order"
    # The other web host starts at once, without the lock: it pulls, then waits for the lock (a line on
    # its stdin) before it touches kamal-proxy or lists the role's containers.
    other_first = other.first[:command]
    refute_includes other_first, "lock-app"
    assert_includes other_first, "docker run --detach"
    steps = [ "docker pull 10.213.0.1:5000/app:v1", "read -r go", "kamal-rs:proxy-boot", "docker ps -a" ].map { |s| other_first.index(s) }
    assert steps.all?, other_first
    assert_equal steps.sort, steps, "pull, lock, proxy, list out of order"
    # The workers host pulls on its own; its boot is a later command.
    worker = Lab.transcript(WORKER)
    assert_includes worker.first[:command], "docker pull"
    refute_includes worker.first[:command], "docker run"
    assert worker.any? { |c| c[:command].include?("docker run --detach") && c[:time] >= worker.first[:ended] }
    # Latest is tagged after every host booted, and the lock released.
    assert_equal "", remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first, "lock released"
    booted = (primary + other + worker).select { |c| c[:command].include?("docker run --detach") }.map { |c| c[:ended] }.max
    tagged = (primary + other + worker).select { |c| c[:command].include?("docker tag") }.map { |c| c[:time] }
    assert_equal 3, tagged.size
    assert_operator tagged.min, :>=, booted
    audit = remote(WEB[1], "cat .kamal/app-staging-audit.log").first
    assert_match(/\] Pulled image with version v1\n/, audit)
    assert_match(/\] \[web\] Booted app version v1\n/, audit)
  end

  def test_02_a_held_lock_stops_every_boot_and_is_left_alone
    given_serving("v1")
    # No v2 container anywhere: the run must not make one.
    (WEB + [ WORKER ]).each { |ip| remote(ip, "docker ps -aq --filter name=-v2 | xargs -r docker rm -f") }
    details = Base64.encode64("Locked by: someone at 2026-01-01T00:00:00Z\nVersion: v9\nMessage: Automatic deploy lock")
    remote(WEB[0], %(mkdir -p .kamal && mkdir #{LOCK} && echo "#{details}" > #{LOCK}/details))
    Lab.reset_transcripts
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v2")
    assert_equal 1, status, out
    assert_includes out, "Deploy lock already in place!"
    assert_includes out, "Locked by: someone at 2026-01-01T00:00:00Z"
    assert_includes out, "ERROR (Kamal::Cli::LockError): Deploy lock found. Run 'kamal lock help' for more information"
    # The primary's script stopped at the lock (exit 77: nothing after the `mkdir` ran); the other hosts
    # only pulled (Kamal too pulls before its `with_lock`): the web host's script stopped at its wait for
    # the lock (exit 85), before kamal-proxy or its boot.
    assert_equal [ 77 ], Lab.transcript(WEB[0]).map { |c| c[:status] }.first(1)
    assert_equal [ 85 ], Lab.transcript(WEB[1]).map { |c| c[:status] }.first(1)
    refute Lab.transcript(WORKER).any? { |c| c[:command].include?("docker run") }
    (WEB + [ WORKER ]).each do |ip|
      assert_equal "", docker(ip, "ps -a --format '{{.Names}}' --filter name=-v2"), "#{ip} booted without the lock"
    end
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
    assert_equal "Locked by: someone at 2026-01-01T00:00:00Z\n", remote(WEB[0], "base64 -d #{LOCK}/details | head -1").first,
                 "somebody else's lock was touched"
  ensure
    remote(WEB[0], "rm -rf #{LOCK}") if @app
  end

  def test_03_redeploy_then_an_unpullable_version_changes_nothing
    given_serving("v1")
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v2")
    assert_equal 0, status, out
    WEB.each { |ip| assert_equal "app v2\n", http_get(ip) }

    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "no-such-version")
    assert_equal 1, status, out
    assert_match(/docker stdout: .*no-such-version/m, out)
    assert_includes out, "#{WEB[1]}: web: not booted, old version v2 still serving"
    WEB.each { |ip| assert_equal "app v2\n", http_get(ip) }
    assert_equal "app-workers-staging-v2 running", docker(WORKER, "ps --format '{{.Names}} {{.State}}' --filter label=role=workers").strip
    assert_equal "", remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first, "lock released"
    assert_equal "", remote(WEB[0], "ls /tmp | grep '^tmp\\.'").first, "the container list's temporary file (mktemp's tmp.*) is removed"
  end

  # The registry answers only after 3 s (a relay on this machine, reached through the SSH reverse
  # forward of a `localhost` registry), so Ctrl-C lands while every host is pulling.
  def test_04_ctrl_c_during_the_pull_stops_every_script_before_its_boot
    given_serving("v2")
    config = File.join(@app, "config", "deploy.yml")
    original = File.read(config)
    File.write(config, original.sub(/^registry:\n(  .*\n)+/, "registry:\n  server: localhost:5757\n"))
    status, out = with_registry_relay(delay: 3) do
      Lab.reset_transcripts
      reader, writer = IO.pipe
      pid = spawn({ "RUBYLIB" => File.join(ROOT, "lib") }, RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"),
                  "redeploy", "-P", "-d", "staging", "--version", "v1", chdir: @app, out: writer, err: writer)
      writer.close
      Lab.wait_until(what: "every web host pulling", timeout: 60) do
        WEB.all? { |ip| Lab.transcript(ip).any? { |c| c[:command].include?("docker pull") && c[:ended].nil? } }
      end
      Process.kill("INT", pid)
      _, status = Timeout.timeout(60) { Process.wait2(pid) }
      [ status, reader.read ]
    end
    assert_equal 130, status.exitstatus, out
    WEB.each do |ip|
      assert_includes out, "#{ip}: web: not booted, old version v2 still serving"
      assert_equal 130, Lab.transcript(ip).first[:status], "#{ip}: the script did not stop before its boot"
      assert_equal [ "app-web-staging-v2 running" ],
                   docker(ip, "ps --format '{{.Names}} {{.State}}' --filter label=role=web").lines.map(&:strip)
      assert_equal "app v2\n", http_get(ip)
      assert_equal "", remote(ip, "ls /tmp | grep '^tmp\\.'").first, "mktemp's file is removed"
    end
    assert_equal "", remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first, "lock released"
  ensure
    File.write(config, original) if original
  end

  # Rollback without hooks: each host checks that it has the version in its first script (the primary's
  # after the lock), waits there until every host has said so, then boots; no pull anywhere.
  def test_05_rollback_checks_the_version_in_each_hosts_first_script
    given_serving("v1", "v2")
    Lab.reset_transcripts
    status, out = kamal_rs("rollback", "-d", "staging", "v1")
    assert_equal 0, status, out
    assert_one_connection_per_host(WEB + [ WORKER ])
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
    assert_equal "app-workers-staging-v1 running", docker(WORKER, "ps --format '{{.Names}} {{.State}}' --filter label=role=workers").strip
    primary, other = WEB.map { |ip| Lab.transcript(ip) }
    first = primary.first[:command]
    steps = [ "mkdir .kamal/lock-app-staging", "docker container ls --all --filter 'name=^app-web-staging-v1$' --quiet",
              "docker run --detach --restart unless-stopped --name app-web-staging-v1" ].map { |s| first.index(s) }
    assert steps.all?, first
    assert_equal steps.sort, steps, "lock, check, boot out of order"
    assert_includes other.first[:command], "docker container ls --all --filter 'name=^app-web-staging-v1$' --quiet"
    assert_includes other.first[:command], "docker run --detach"
    worker = Lab.transcript(WORKER)
    assert_includes worker.first[:command], "docker container ls --all --filter 'name=^app-workers-staging-v1$' --quiet"
    (WEB + [ WORKER ]).each do |ip|
      refute Lab.transcript(ip).any? { |c| c[:command].include?("docker pull") }, "#{ip}: a rollback pulls nothing"
    end
    assert_operator out.index("Acquiring the deploy lock..."), :<, out.index("Releasing the deploy lock...")
    assert_equal "", remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first, "lock released"
  end

  def test_06_rollback_to_a_version_one_host_lacks_changes_nothing
    given_serving("v2", "v1")
    remote(WEB[1], "docker rm app-web-staging-v2")
    containers = -> { (WEB + [ WORKER ]).map { |ip| docker(ip, "ps -a --format '{{.Names}} {{.State}}'").lines.sort } }
    before = containers.call
    Lab.reset_transcripts
    status, out = kamal_rs("rollback", "-d", "staging", "v2")
    assert_equal 1, status, out
    assert_includes out, "Error looking for container version v2: Exception while executing on host #{WEB[1]}: Container not found"
    assert_includes out, "ERROR (RuntimeError): The app version 'v2' is not available as a container (use 'kamal app containers' for available versions)"
    assert_equal before, containers.call, "no container was renamed, started or stopped"
    # The primary's script took the lock, found v2, and stopped at the barrier (exit 85) before its boot.
    assert_equal 85, Lab.transcript(WEB[0]).first[:status]
    WEB.each do |ip|
      assert_equal "app v1\n", http_get(ip)
      assert_equal [ "app-web-staging-v1 running" ], docker(ip, "ps --format '{{.Names}} {{.State}}' --filter label=role=web").lines.map(&:strip)
    end
    assert_equal "", remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first, "lock released"
  end

  def test_07_rollback_without_a_version_picks_one_then_rolls_back_per_host
    given_serving("v1")
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v2")
    assert_equal 0, status, out
    Lab.reset_transcripts
    status, out = kamal_rs("rollback", "-d", "staging")
    assert_equal 0, status, out
    assert_match(/^Rolling back to v1: /, out)
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
    assert_one_connection_per_host(WEB + [ WORKER ])
    assert_equal "", remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first, "lock released"
  end

  # Only the web role: every host is behind kamal-proxy, so each host's one script also tags latest
  # (and the primary's releases the lock), after saying its boot succeeded and waiting for every
  # host's: one remote command per host for the whole redeploy.
  def test_08_web_only_each_host_tags_in_its_one_script_once_every_host_booted
    given_serving("v1")
    Lab.reset_transcripts
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v2", "-r", "web")
    assert_equal 0, status, out
    WEB.each do |ip|
      commands = Lab.transcript(ip)
      assert_equal 1, commands.size, commands.map { |c| c[:command][0, 80] }.inspect
      script = commands.first[:command]
      steps = [ "docker pull", "docker run --detach", "kamal-rs:booted", "docker tag 10.213.0.1:5000/app:v2 10.213.0.1:5000/app:latest-staging" ]
      at = steps.map { |s| script.index(s) }
      assert at.all? && at == at.sort, "#{ip}: pull, boot, gate, tag out of order"
      assert_equal "app v2\n", http_get(ip)
      assert_equal latest_image(ip), image_id(ip, "v2")
    end
    assert_includes Lab.transcript(WEB[0]).first[:command], "rm -r #{LOCK}"
    refute_includes Lab.transcript(WEB[1]).first[:command], "rm -r #{LOCK}"
    assert_equal "", remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first, "lock released"
    assert_equal 1, out.scan("Releasing the deploy lock...").size, out
    assert_operator out.index("Detect stale containers..."), :<, out.index("Releasing the deploy lock...")
    audit = remote(WEB[1], "tail -n 1 .kamal/app-staging-audit.log").first
    assert_match(/Tagging 10.213.0.1:5000\/app:v2 as the latest image$/, audit)
  end

  # One web host's boot fails (its kamal-proxy is stopped): the other one's new version serves, but
  # neither tags latest, and the lock is released.
  def test_09_a_boot_failing_on_one_host_stops_the_tag_on_every_host
    given_serving("v2")
    remote(WEB[1], "docker stop kamal-proxy")
    Lab.reset_transcripts
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v1", "-r", "web")
    assert_equal 1, status, out
    assert_includes out, "Failed to boot web on #{WEB[1]}"
    assert_equal "app v1\n", http_get(WEB[0])
    assert_equal 85, Lab.transcript(WEB[0]).first[:status], "the booted host stopped at the gate"
    WEB.each do |ip|
      assert_equal image_id(ip, "v2"), latest_image(ip), "#{ip}: latest tagged after a failed boot"
    end
    assert_equal "", remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first, "lock released"
    assert_equal [ "app-web-staging-v2 running" ],
                 docker(WEB[1], "ps --format '{{.Names}} {{.State}}' --filter label=role=web").lines.map(&:strip)
  ensure
    remote(WEB[1], "docker start kamal-proxy") if @app
  end

  private
    def given_serving(*history)
      super(*history, web: WEB, hosts: WEB + [ WORKER ]) do |version|
        status, out = kamal_rs("deploy", "-P", "-d", "staging", "--version", version, "-q")
        assert_equal 0, status, "setting the lab up: deploy #{version}:\n#{out}"
      end
    end

    def latest_image(ip)
      docker(ip, "image inspect --format '{{.Id}}' 10.213.0.1:5000/app:latest-staging").strip
    end

    def image_id(ip, version)
      docker(ip, "image inspect --format '{{.Id}}' 10.213.0.1:5000/app:#{version}").strip
    end

    def kamal_rs(*args)
      run_kamal_rs(@app, *args)
    end
end
