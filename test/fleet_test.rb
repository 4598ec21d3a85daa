require "test_helper"
require "json"
require "tmpdir"
require_relative "lab_helpers"
require_relative "lab/faults"

# A fleet that ends in one known state, on six lab hosts (web with kamal-proxy on h1-h5, workers on h6),
# each test from v1 deployed everywhere: the failure budget (`--max-fail`) leaves a host that cannot be
# reached, or whose new container never gets healthy, behind, goes on with the rest, exits 3 and prints
# the command that finishes the job; over the budget, or on the lock's host, the run fails as Kamal's.
# The health check path is served from a host directory bind-mounted into the app (`/root/health`), so
# one host's new container can be made never healthy by removing its file.
class FleetTest < Minitest::Test
  include LabHelpers

  WEB = %w[10.213.0.11 10.213.0.12 10.213.0.13 10.213.0.14 10.213.0.15].freeze
  WORKER = "10.213.0.16".freeze
  HOSTS = (WEB + [ WORKER ]).freeze

  def self.app
    @app ||= begin
      LabHelpers.fresh_lab(6)
      dir = Dir.mktmpdir("fleet-app")
      Minitest.after_run { FileUtils.rm_rf(dir) }
      FileUtils.mkdir_p([ File.join(dir, "config"), File.join(dir, ".kamal") ])
      File.write(File.join(dir, ".kamal", "secrets"), "REGISTRY_PASSWORD=lab\n")
      File.write(File.join(dir, "config", "deploy.yml"), <<~YAML)
        service: app
        image: app
        servers:
          web: [ #{WEB.join(", ")} ]
          workers: [ #{WORKER} ]
        proxy:
          healthcheck: { path: /health/up, interval: 1, timeout: 2 }
        volumes: [ "/root/health:/www/health" ]
        registry: { server: "#{Lab::REGISTRY}", username: lab, password: [ REGISTRY_PASSWORD ] }
        builder: { arch: amd64 }
        deploy_timeout: 6
        readiness_delay: 0
        ssh: { keys: [ #{Lab::KEY} ], config: #{Lab::SSH_CONFIG} }
      YAML
      # Kamal names the performer and (for a rollback's hooks and lock) the app's version from git.
      system("git init -q && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m app", chdir: dir, exception: true)
      dir
    end
  end

  def setup
    flunk "the lab needs root: run the tests as root" unless Process.uid.zero?
    @app = self.class.app
    Lab::Faults.heal_all
    HOSTS.each { |ip| Lab::Faults.start_sshd(host_name(ip)) }
    # Every test starts from the same state: the app's containers, files and audit log gone, v1 deployed.
    HOSTS.each do |ip|
      remote(ip, "mkdir -p /root/health && echo ok > /root/health/up && rm -rf .kamal/lock-app .kamal/apps .kamal/app-audit.log; " \
                 "docker ps -aq --filter label=service=app | xargs -r docker rm -f >/dev/null")
    end
    status, out = run_kamal_rs(@app, "deploy", "-P", "--version", "v1")
    assert_equal 0, status, out
    assert_versions(HOSTS.to_h { |ip| [ ip, "v1" ] })
  end

  def teardown
    Lab::Faults.heal_all
    HOSTS.each { |ip| Lab::Faults.start_sshd(host_name(ip)) }
  end

  # (a) One web host unreachable from the start, --max-fail 1: exit 3, the other five on v2, that one
  # untouched; the printed command, run once it is back, exits 0 with all six on v2.
  def test_a_host_unreachable_from_the_start_is_left_behind_and_the_printed_command_finishes_the_job
    Lab::Faults.kill_sshd("h3")
    events = File.join(@app, "events.jsonl")
    status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2", "--max-fail", "1", "--events", events)
    assert_equal 3, status, out
    assert_includes out, "Left behind: 1 of 6 hosts (--max-fail 1), each still running what it ran before:"
    assert_match(/  10\.213\.0\.13: could not connect: connection refused/, out)
    command = out[/Finish the job once they are back: (.*)$/, 1]
    assert_equal "kamal-rs redeploy -P --version v2 -h 10.213.0.13", command
    run_end = File.readlines(events).map { |l| JSON.parse(l) }.find { |e| e["event"] == "run_end" }
    assert_equal [ "partial", [ "10.213.0.13" ], command ],
                 [ run_end["status"], run_end["left_behind"].map { |l| l["host"] }, run_end["finish_command"] ]
    Lab::Faults.start_sshd("h3")
    assert_versions(HOSTS.to_h { |ip| [ ip, ip == "10.213.0.13" ? "v1" : "v2" ] })
    assert_no_lock
    status, out = run_kamal_rs(@app, *command.split.drop(1))
    assert_equal 0, status, out
    assert_versions(HOSTS.to_h { |ip| [ ip, "v2" ] })
  ensure
    FileUtils.rm_f(events) if events
  end

  # A non-primary web host whose new container never gets healthy, within --max-fail 1: the others
  # switch, that host keeps serving v1 (kamal-proxy never switched to the new container).
  def test_a_host_whose_boot_fails_is_left_behind_serving_the_old_version
    remote(WEB[3], "rm -f /root/health/up")
    status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2", "--max-fail", "1")
    assert_equal 3, status, out
    assert_match(/  10\.213\.0\.14: /, out)
    assert_versions(HOSTS.to_h { |ip| [ ip, ip == WEB[3] ? "v1" : "v2" ] })
    assert_no_lock
  end

  # (b) A non-primary web host whose new container is never healthy, --revert-on-failure: exit 1, every
  # host that switched back on v1, each as `kamal rollback v1` leaves it (Ruby Kamal 2.12's, run after
  # the same failed redeploy without the revert), the lock released.
  def test_revert_on_failure_puts_every_switched_host_back_as_kamal_rollback_would
    flunk "needs Ruby Kamal 2.12: script/install-ruby-kamal (script/setup runs it)" if ruby_kamal.empty?
    switched = HOSTS - [ WEB[3] ]
    remote(WEB[3], "rm -f /root/health/up")
    status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2", "--revert-on-failure")
    assert_equal 1, status, out
    assert_match(/reverted: 5 hosts back on v1 \(revert \d+\.\d s\)/, out)
    assert_versions(HOSTS.to_h { |ip| [ ip, "v1" ] })
    assert_no_lock
    ours = switched.to_h { |ip| [ ip, state_of(ip) ] }

    setup
    remote(WEB[3], "rm -f /root/health/up")
    status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2")
    assert_equal 1, status, out
    out, status = Open3.capture2e(*ruby_kamal, "rollback", "v1", "-h", switched.join(","), chdir: @app)
    assert status.success?, out
    assert_versions(HOSTS.to_h { |ip| [ ip, "v1" ] })
    switched.each { |ip| assert_equal state_of(ip), ours[ip], "#{ip}: the revert left what kamal rollback v1 leaves" }
  end

  # A redeploy of the version every host runs, failing on one: the others ran that version before, so
  # there is nothing to go back to (their old container was renamed `v1_replaced_<hex>`, a name no
  # image has); the run says so instead of failing a rollback to that name.
  def test_revert_on_failure_of_the_running_version_has_nothing_to_revert
    remote(WEB[3], "rm -f /root/health/up")
    status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v1", "--revert-on-failure")
    assert_equal 1, status, out
    (HOSTS - [ WEB[3] ]).each { |ip| assert_includes out, "not reverted: #{ip}: it ran v1 before this run too" }
    refute_match(/its rollback to|Reverting/, out)
    assert_versions(HOSTS.to_h { |ip| [ ip, "v1" ] })
    assert_no_lock
  end

  # (c) A canary wave: `--canary 1 --canary-wait 3` boots the first web host, watches it 3 s, then the
  # others. A canary whose new container is never healthy stops the run there: exit 1, the canary
  # named, no other host changed, the canary serving v1 (with --revert-on-failure). All healthy: every
  # host on v2, the canary's boot over at least 3 s before any other host's began (--events).
  def test_a_canary_wave_boots_the_others_only_after_its_wait
    remote(WEB[0], "rm -f /root/health/up")
    before = (HOSTS - [ WEB[0] ]).to_h { |ip| [ ip, docker(ip, "ps -a --format '{{.Names}} {{.State}}'").lines.sort ] }
    status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2", "--canary", "1", "--canary-wait", "3", "--revert-on-failure")
    assert_equal 1, status, out
    assert_match(/10\.213\.0\.11/, out.lines.grep(/ERROR/).last.to_s)
    (HOSTS - [ WEB[0] ]).each { |ip| assert_equal before[ip], docker(ip, "ps -a --format '{{.Names}} {{.State}}'").lines.sort, ip }
    assert_versions(HOSTS.to_h { |ip| [ ip, "v1" ] })
    assert_no_lock

    remote(WEB[0], "echo ok > /root/health/up")
    events = File.join(@app, "events.jsonl")
    status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2", "--canary", "1", "--canary-wait", "3", "--events", events)
    assert_equal 0, status, out
    assert_includes out, "Canary wave: v2 on 10.213.0.11; waiting 3 s before booting the other hosts..."
    assert_versions(HOSTS.to_h { |ip| [ ip, "v2" ] })
    steps = File.readlines(events).map { |l| JSON.parse(l) }.select { |e| e["step"] == "boot" }
    canary_end = steps.select { |e| e["event"] == "step_end" && e["host"] == WEB[0] }.map { |e| e["elapsed"] }.max
    others_start = steps.select { |e| e["event"] == "step_start" && e["host"] != WEB[0] }.map { |e| e["elapsed"] }.min
    assert_operator others_start - canary_end, :>=, 3.0, "the canary's boot ended at #{canary_end} s, the next began at #{others_start} s"
  ensure
    FileUtils.rm_f(events) if events
  end

  # Boot groups (`boot.limit: 2`) keep the budget and the canary wave: h3 unreachable and h5 never
  # healthy are left behind within --max-fail 2, the canary (h1) boots alone first and is watched, the
  # others boot at most two at a time; the command printed names both hosts and the config file.
  def test_boot_groups_keep_the_budget_and_the_canary_wave
    File.write(File.join(@app, "config", "deploy.groups.yml"),
               File.read(File.join(@app, "config", "deploy.yml")) + "boot: { limit: 2 }\n")
    Lab::Faults.kill_sshd("h3")
    remote(WEB[4], "rm -f /root/health/up")
    events = File.join(@app, "events.jsonl")
    status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2", "-c", "config/deploy.groups.yml",
                               "--max-fail", "2", "--canary", "1", "--events", events)
    assert_equal 3, status, out
    assert_includes out, "Canary wave: v2 on 10.213.0.11; waiting 0 s before booting the other hosts..."
    command = out[/Finish the job once they are back: (.*)$/, 1].to_s
    assert_equal "kamal-rs redeploy -P --version v2 -c config/deploy.groups.yml -h", command[/\A.* -h/], out
    assert_equal [ WEB[2], WEB[4] ], command.split.last.split(",").sort
    assert_match(/^  10\.213\.0\.15: docker exit status: 1 \(Error: target failed to become healthy within configured timeout/, out)
    Lab::Faults.start_sshd("h3")
    assert_versions(HOSTS.to_h { |ip| [ ip, [ WEB[2], WEB[4] ].include?(ip) ? "v1" : "v2" ] })
    assert_no_lock
    boots = File.readlines(events).map { |l| JSON.parse(l) }.select { |e| e["step"] == "boot" }
    spans = boots.group_by { |e| e["host"] }.transform_values { |es| es.map { |e| e["elapsed"] }.minmax }
    canary_end = spans.fetch(WEB[0]).last
    others = spans.reject { |h, _| h == WEB[0] }
    assert_operator others.values.map(&:first).min, :>=, canary_end, "no other host boots before the canary is done: #{spans}"
    most = others.values.map(&:first).map { |t| others.values.count { |s, e| s <= t && t < e } }.max
    assert_operator most, :<=, 2, "boot.limit 2: at most two hosts boot at once: #{spans}"
  ensure
    FileUtils.rm_f([ events, File.join(@app, "config", "deploy.groups.yml") ].compact)
  end

  # Over the budget (two hosts down, --max-fail 1) the run fails before any boot, as Kamal's does; the
  # lock's host (the primary) down fails it whatever the budget.
  def test_over_the_budget_or_the_lock_host_down_nothing_changes
    %w[h2 h3].each { |h| Lab::Faults.kill_sshd(h) }
    status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2", "--max-fail", "1")
    assert_equal 1, status, out
    %w[h2 h3].each { |h| Lab::Faults.start_sshd(h) }
    assert_versions(HOSTS.to_h { |ip| [ ip, "v1" ] })
    Lab::Faults.kill_sshd("h1")
    status, out = run_kamal_rs(@app, "redeploy", "-P", "--version", "v2", "--max-fail", "50%")
    assert_equal 1, status, out
    Lab::Faults.start_sshd("h1")
    assert_versions(HOSTS.to_h { |ip| [ ip, "v1" ] })
    assert_no_lock
  end

  private
    def host_name(ip)
      "h#{ip.split(".").last.to_i - 10}"
    end

    # What each host runs: web hosts answer through kamal-proxy, the worker's running container says.
    def assert_versions(expected)
      actual = expected.keys.to_h do |ip|
        version = if WEB.include?(ip)
                    http_get(ip).split.last
                  else
                    docker(ip, "ps --filter label=role=workers --format '{{.Image}}'").strip.split(":").last
                  end
        [ ip, version ]
      end
      assert_equal expected, actual
    end

    # A host's state as a rollback leaves it: containers (name, state, image; a replaced container's
    # random suffix left out), their labels, the `.kamal` files, the audit log's lines without times.
    def state_of(ip)
      containers = docker(ip, "ps -a --format '{{.Names}} {{.State}} {{.Image}} {{.Labels}}'").lines.map do |l|
        l.sub(/_replaced_\h+/, "_replaced_X").split(" ", 4).then { |n, st, img, labels| [ n, st, img, labels.to_s.split(",").sort ] }
      end
      files, = remote(ip, "find .kamal -type f | sort")
      audit, = remote(ip, "cat .kamal/app-audit.log 2>/dev/null")
      { containers: containers.sort, files: files.lines.map(&:strip), audit: audit.lines.map { |l| l.sub(/\A\[[^\]]*\]/, "[T]").sub(/_replaced_\h+/, "_replaced_X").strip } }
    end

    def assert_no_lock
      out, = remote(WEB[0], "ls -d .kamal/lock-app 2>/dev/null || echo none")
      assert_equal "none", out.strip, "the deploy lock is released"
    end
end
