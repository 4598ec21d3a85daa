require "test_helper"
require "json"
require "open3"
require "shellwords"
require "timeout"
require "tmpdir"
require_relative "lab_helpers"

# Kamal taking over from kamal_rs and back, on the same three lab hosts: deploys, redeploys and
# rollbacks alternate between the two, the lock one takes stops the other, and a container either one
# boots for a version is the same container. Runs Ruby Kamal 2.12: the `kamal-2.12` that
# script/install-ruby-kamal puts on PATH (script/setup runs it), or KAMAL_RS_TEST_KAMAL (say
# "bundle exec kamal").
class KamalInteropTest < Minitest::Test
  include LabHelpers

  APP = File.join(FIXTURES, "deploy_app")
  WEB = %w[10.213.0.11 10.213.0.12].freeze
  WORKER = "10.213.0.13".freeze
  LOCK = ".kamal/lock-app-staging".freeze

  def self.lab
    @lab ||= LabHelpers.fresh_lab(3)
  end

  def setup
    require_ruby_kamal
    require_root
    self.class.lab
  end

  def test_01_kamal_redeploys_over_a_kamal_rs_deploy_and_boots_the_same_container
    tool_run!(:kamal_rs, "deploy", "-P", "-d", "staging", "--version", "v1")
    tool_run!(:kamal, "redeploy", "-P", "-d", "staging", "--version", "v2")
    serving "v2"
    by_kamal = [ *WEB, WORKER ].to_h { |ip| [ ip, container_shape(ip) ] }
    tool_run!(:kamal_rs, "redeploy", "-P", "-d", "staging", "--version", "v2")
    serving "v2"
    [ *WEB, WORKER ].each { |ip| assert_equal by_kamal[ip], container_shape(ip), "#{ip}: v2 as Kamal booted it and as kamal_rs did" }
  end

  def test_02_rollbacks_alternate
    given_serving("v1", "v2")
    tool_run!(:kamal_rs, "rollback", "v1", "-d", "staging")
    serving "v1"
    tool_run!(:kamal, "rollback", "v2", "-d", "staging")
    serving "v2"
    out = tool_run!(:kamal_rs, "rollback", "-d", "staging")
    assert_includes out, "Rolling back to v1"
    serving "v1"
    [ *WEB, WORKER ].each do |ip|
      running = docker(ip, "ps --filter label=service=app --format '{{.Names}}'").split
      assert_equal 1, running.size, "#{ip}: one running container per role: #{running}"
    end
  end

  def test_03_each_ones_lock_stops_the_other
    given_serving("v1")
    tool_run!(:kamal, "lock", "acquire", "-m", "maintenance", "-d", "staging")
    status, out = tool_run(:kamal_rs, "redeploy", "-P", "-d", "staging", "--version", "v2")
    assert_equal 1, status
    assert_includes out, "Message: maintenance"
    assert_includes out, "ERROR (Kamal::Cli::LockError)"
    # Handed over to Kamal by kamal-rs itself.
    tool_run!(:kamal_rs, "lock", "release", "-d", "staging")
    assert_equal "", remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first
    serving "v1"
  end

  def test_04_a_kamal_deploy_prunes_what_kamal_rs_left_and_the_other_way_round
    tool_run!(:kamal, "deploy", "-P", "-d", "staging", "--version", "v2")
    serving "v2"
    tool_run!(:kamal_rs, "deploy", "-P", "-d", "staging", "--version", "v1")
    serving "v1"
    audit = remote(WEB[0], "cat .kamal/app-staging-audit.log").first
    assert_operator audit.scan("Pruned containers").size, :>=, 2
    out = tool_run!(:kamal_rs, "app", "containers", "-d", "staging")
    assert_includes out, "app-web-staging-v1"
  end

  # Without hooks, kamal_rs's rollback is the per-host rollout (the check in each host's first script):
  # what it boots is what Kamal's rollback boots, and Kamal's `app details` reads it back.
  def test_05_a_per_host_rollback_boots_what_kamals_rollback_boots
    given_serving("v1", "v2")
    dir = Dir.mktmpdir("interop-app")
    FileUtils.cp_r(File.join(APP, "."), dir)
    FileUtils.rm_rf(File.join(dir, ".kamal", "hooks"))
    # Kamal's lock message reads the app's git version.
    system("git init -q && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m app", chdir: dir, exception: true)
    tool_run!(:kamal, "rollback", "v2", "-d", "staging", dir: dir)
    serving "v2"
    by_kamal = [ *WEB, WORKER ].to_h { |ip| [ ip, container_shape(ip) ] }
    tool_run!(:kamal_rs, "rollback", "v1", "-d", "staging", dir: dir)
    serving "v1"
    out = tool_run!(:kamal_rs, "rollback", "v2", "-d", "staging", dir: dir)
    refute_includes out, "Running /usr/bin/env .kamal/hooks"
    serving "v2"
    [ *WEB, WORKER ].each { |ip| assert_equal by_kamal[ip], container_shape(ip), "#{ip}: v2 as Kamal's rollback booted it and as kamal_rs's did" }
    details = tool_run!(:kamal, "app", "details", "-d", "staging", dir: dir)
    WEB.each do |ip|
      block = details[/^App Host: #{Regexp.escape(ip)}\n(?:.+\n)+/]
      assert_match(/ Up .* app-web-staging-v2$/, block.to_s, details)
    end
    assert_equal "", remote(WEB[0], "ls -d #{LOCK} 2>/dev/null").first
  ensure
    FileUtils.rm_rf(dir) if dir
  end

  private
    def given_serving(*history)
      super(*history, web: WEB, hosts: [ *WEB, WORKER ]) { |version| tool_run!(:kamal_rs, "deploy", "-P", "-d", "staging", "--version", version, "-q") }
    end

    def tool_run(tool, *args, dir: APP)
      env = { "RUBYLIB" => File.join(ROOT, "lib"), "KAMAL_RS_KAMAL" => ruby_kamal.shelljoin }
      command = tool == :kamal ? ruby_kamal : [ RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs") ]
      out, status = Timeout.timeout(180) { Open3.capture2e(env, *command, *args, chdir: dir) }
      [ status.exitstatus, out ]
    end

    def tool_run!(tool, *args, dir: APP)
      status, out = tool_run(tool, *args, dir: dir)
      assert_equal 0, status, "#{tool} #{args.join(" ")}:\n#{out}"
      out
    end

    def serving(version)
      WEB.each { |ip| assert_equal "app #{version}\n", http_get(ip) }
      running = docker(WORKER, "ps --filter label=role=workers --format '{{.Names}}'").strip
      assert_equal "app-workers-staging-#{version}", running
    end

    # What a deploy decides about the running container: everything but what docker makes up per run.
    def container_shape(ip)
      name = docker(ip, "ps --filter label=service=app --format '{{.Names}}'").strip
      info = JSON.parse(docker(ip, "inspect #{name}")).first
      config, host = info["Config"], info["HostConfig"]
      { name: name, image: config["Image"], cmd: config["Cmd"], env: config["Env"].sort, labels: config["Labels"],
        hostname: config["Hostname"].sub(/-\h{12}\z/, ""), restart: host["RestartPolicy"], log: host["LogConfig"],
        network: host["NetworkMode"], binds: host["Binds"], mounts: info["Mounts"].map { |m| m.slice("Source", "Destination") } }
    end
end
