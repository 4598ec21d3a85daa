require "test_helper"
require "timeout"
require "json"
require_relative "lab_helpers"

# A Kamal 1.x (Traefik era) config on three lab hosts: web behind Traefik on two, a worker on one, a
# destination, secrets from .env / .env.staging. Kamal 1.9's steps: env push first, then deploy and
# redeploy (which skips the registry login, the Traefik boot and the prune).
class DeployV1Test < Minitest::Test
  include LabHelpers

  APP = File.join(FIXTURES, "deploy_app_v1")
  WEB = %w[10.213.0.11 10.213.0.12].freeze
  WORKER = "10.213.0.13".freeze
  HOSTS = [ *WEB, WORKER ].freeze

  def self.lab
    @lab ||= LabHelpers.fresh_lab(3)
  end

  def setup
    require_root
    self.class.lab
  end

  def test_01_deploy_without_env_files_names_the_host_and_takes_no_lock
    HOSTS.each { |ip| remote(ip, "rm -rf .kamal/env") }
    status, out = kamal_rs("deploy", "-P", "-d", "staging", "--version", "v1")
    assert_equal 1, status, out
    HOSTS.each { |ip| assert_match(/#{Regexp.escape(ip)}: \.kamal\/env\/roles\/app-\w+-staging\.env is missing\. .*run `kamal-rs env push`/, out) }
    refute_includes out, "Acquiring the deploy lock"
    assert_equal "", remote(WEB[0], "ls -d .kamal/locks/app-staging 2>/dev/null").first
  ensure
    # The app's containers are still there: a test after this one (a rollback) needs their env files.
    status, out = kamal_rs("env", "push", "-d", "staging")
    assert_equal 0, status, "putting the env files back: env push:\n#{out}"
  end

  def test_02_env_push_uploads_the_env_files_mode_400
    status, out = kamal_rs("env", "push", "-d", "staging")
    assert_equal 0, status, out
    refute_includes out, "s3cr3t-staging"
    assert_equal "400 DB_PASSWORD=s3cr3t-staging\n", remote(WEB[0], "stat -c %a .kamal/env/roles/app-web-staging.env | tr '\\n' ' '; cat .kamal/env/roles/app-web-staging.env").first
    assert_equal "400 DB_PASSWORD=s3cr3t-staging\n", remote(WORKER, "stat -c %a .kamal/env/roles/app-workers-staging.env | tr '\\n' ' '; cat .kamal/env/roles/app-workers-staging.env").first
    assert_equal "400\n", remote(WEB[1], "stat -c %a .kamal/env/traefik/traefik.env").first
    assert_equal "", remote(WORKER, "ls .kamal/env/traefik 2>/dev/null").first, "no Traefik on the worker host"
    assert_equal "", remote(WEB[0], "ls -d .kamal/locks/app-staging 2>/dev/null").first, "lock released"
  end

  def test_03_deploy_v1_boots_traefik_and_the_app_and_prunes
    wipe
    Lab.reset_transcripts
    status, out = kamal_rs("deploy", "-P", "-d", "staging", "--version", "v1")
    assert_equal 0, status, out
    assert_one_connection_per_host(HOSTS)
    %w[Log\ into\ image\ registry... Ensure\ Traefik\ is\ running... Prune\ old\ containers\ and\ images...].each { |l| assert_includes out, "#{l}\n" }
    WEB.each do |ip|
      assert_equal "app v1\n", http_get(ip), "Traefik on #{ip} serves v1"
      commands = Lab.transcript(ip).map { |l| l[:command] }.join("\n")
      assert_includes commands, "docker login 10.213.0.1:5000"
      assert_includes commands, "docker container start traefik || docker run --name traefik --detach --restart unless-stopped --publish 80:80"
      assert_includes commands, "docker image prune --force --filter label=service=app"
      assert_includes commands, "docker container prune --force --filter label=service=healthcheck-app-staging"
      assert_includes commands, "mkdir .kamal/locks/app-staging && echo" if ip == WEB[0]
    end
    assert_equal "app-workers-staging-v1 running", docker(WORKER, "ps --format '{{.Names}} {{.State}}' --filter label=role=workers").strip
    env = docker(WORKER, "exec app-workers-staging-v1 env").lines.map(&:chomp)
    %w[WORKER=1 GREETING=hello STAGE=staging DB_PASSWORD=s3cr3t-staging KAMAL_VERSION=v1].each { |e| assert_includes env, e }

    labels = JSON.parse(docker(WEB[1], "inspect app-web-staging-v1 --format '{{json .Config.Labels}}'"))
    assert_equal "staging", labels["destination"]
    assert_equal "PathPrefix(`/`)", labels["traefik.http.routers.app-web-staging.rule"]
    # 1.9.3 joins the URL with Ruby's URI.join, which leaves out http's default port.
    assert_equal "(curl -f http://localhost/up || exit 1) && (stat /tmp/kamal-cord/cord > /dev/null || exit 1)",
      JSON.parse(docker(WEB[1], "inspect app-web-staging-v1 --format '{{json .Config.Healthcheck.Test}}'")).last
    assert_equal "default", docker(WEB[1], "inspect app-web-staging-v1 --format '{{.HostConfig.NetworkMode}}'").strip, "1.9 uses no --network"
    mounts = docker(WEB[0], %(inspect -f '{{ range .Mounts }}{{printf "%s %s\\n" .Source .Destination}}{{ end }}' app-web-staging-v1))
    assert_match %r{^/root/\.kamal/cords/app-web-staging-[0-9a-f]{32} /tmp/kamal-cord$}, mounts
    assert_includes mounts, "/root/.kamal/assets/volumes/app-web-staging-v1 /www/assets\n"
    audit, = remote(WEB[0], "cat .kamal/app-staging-audit.log")
    assert_equal [ "Pulled image with version v1", "[web] Booted app version v1", "Tagging 10.213.0.1:5000/app:v1 as the latest image",
                   "Pruned containers", "Pruned images" ], audit.lines.map { |l| l.sub(/\A\[[^\]]+\] \[[^\]]+\] \[staging\] /, "").strip }
    assert_includes docker(WEB[0], "image ls --format '{{.Repository}}:{{.Tag}}'"), "10.213.0.1:5000/app:latest-staging"
    assert_equal "/* v1 */\n", remote(WEB[0], "cat .kamal/assets/volumes/app-web-staging-v1/app-v1.css").first, "assets extracted into the volume"
    assert_equal "", remote(WEB[0], "ls -d .kamal/locks/app-staging 2>/dev/null").first, "lock released"
  end

  def test_04_redeploy_v2_skips_login_traefik_and_prune_and_never_drops_a_request
    wipe
    given_serving("v1")
    Lab.reset_transcripts
    answers = []
    polling = true
    poller = Thread.new { (answers << http_get(WEB[0])) && sleep(0.1) while polling }
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v2")
    polling = false
    poller.join
    assert_equal 0, status, out
    assert_one_connection_per_host(HOSTS)
    WEB.each { |ip| assert_equal "app v2\n", http_get(ip) }
    assert_equal [ "app-workers-staging-v2 running", "app-workers-staging-v1 exited" ],
      docker(WORKER, "ps -a --format '{{.Names}} {{.State}}' --filter label=role=workers").lines.map(&:strip)
    assert_equal [ "app-web-staging-v2 running", "app-web-staging-v1 exited" ],
      docker(WEB[0], "ps -a --format '{{.Names}} {{.State}}' --filter label=role=web").lines.map(&:strip)
    HOSTS.each do |ip|
      commands = Lab.transcript(ip).map { |l| l[:command] }.join("\n")
      refute_includes commands, "docker login", "redeploy does not log in (#{ip})"
      refute_includes commands, "--name traefik", "redeploy does not boot Traefik (#{ip})"
      refute_includes commands, "prune", "redeploy does not prune (#{ip})"
    end
    assert_empty answers.uniq - [ "app v1\n", "app v2\n" ], "Traefik always had a healthy container to send to"
    assert_equal "1", remote(WEB[0], "ls .kamal/cords | wc -l").first.strip, "the old container's cord was cut"
    assert_equal "app-web-staging-v2\n", remote(WEB[0], "ls .kamal/assets/volumes").first, "the old version's assets were cleaned up"
    assert_equal "app-v1.css\napp-v2.css\n", remote(WEB[0], "ls .kamal/assets/volumes/app-web-staging-v2").first, "v1's assets bridged into v2's"
  end

  def test_05_an_unhealthy_version_fails_and_leaves_v2_serving
    given_serving("v2")
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "unhealthy", env: { "MAX_ATTEMPTS" => "2" })
    assert_equal 1, status, out
    # The run ends with 1.9's own words for the unhealthy container, not a script's exit status.
    assert_match(/ERROR \(Kamal::Cli::Healthcheck::Error\): (Exceptions on \d hosts:\n)?Exception while executing on host 10\.213\.0\.1[12]: container not ready \([a-z]+\)(\n|\e)/, out)
    refute_match(/exit status: 8\d/, out)
    assert_match %r{INFO container not ready \([a-z]+\), retrying in 1s \(attempt 1/2\)\.\.\.}, out, "1.9's poller messages"
    assert_includes out, "Exception while executing on host 10.213.0.13: Halted at barrier"
    WEB.each do |ip|
      assert_equal "app v2\n", http_get(ip)
      assert_equal "app-web-staging-unhealthy exited", docker(ip, "ps -a --format '{{.Names}} {{.State}}' --filter name=app-web-staging-unhealthy").strip
    end
    assert_equal "app-workers-staging-v2 running", docker(WORKER, "ps --format '{{.Names}} {{.State}}' --filter label=role=workers").strip
    assert_equal "", remote(WEB[0], "ls -d .kamal/locks/app-staging 2>/dev/null").first, "lock released"
  end

  # 1.9's rollback: the containers found with 1.9's unquoted filter, the version booted again with
  # 1.9's steps (no pull, no Traefik boot, no prune), latest tagged, the lock released.
  def test_06_rollback_to_v1
    given_serving("v1", "v2")
    Lab.reset_transcripts
    status, out = kamal_rs("rollback", "v1", "-d", "staging")
    assert_equal 0, status, out
    assert_includes out, "docker container ls --all --filter name=^app-web-staging-v1$ --quiet"
    assert_includes out, "Start container with version v1 using a 2s readiness delay (or reboot if already running)..."
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
    assert_equal "app-workers-staging-v1 running", docker(WORKER, "ps --format '{{.Names}} {{.State}}' --filter label=role=workers").strip
    HOSTS.each { |ip| refute Lab.transcript(ip).any? { |l| l[:command].include?("docker pull") }, "#{ip}: a rollback pulls nothing" }
    assert_equal docker(WEB[0], "image inspect -f '{{.Id}}' 10.213.0.1:5000/app:v1"), docker(WEB[0], "image inspect -f '{{.Id}}' 10.213.0.1:5000/app:latest-staging")
    assert_equal "", remote(WEB[0], "ls -d .kamal/locks/app-staging 2>/dev/null").first, "lock released"
  end

  private
    # The env files pushed and no app container, audit line, cord or asset volume: as before a first
    # deploy.
    def wipe
      HOSTS.each do |ip|
        remote(ip, "docker ps -aq --filter label=service=app | xargs -r docker rm -f; " \
                   "rm -rf .kamal/app-staging-audit.log .kamal/assets .kamal/cords .kamal/locks/app-staging")
      end
      status, out = kamal_rs("env", "push", "-d", "staging")
      assert_equal 0, status, "setting the lab up: env push:\n#{out}"
    end

    def given_serving(*history)
      super(*history, web: WEB, hosts: HOSTS) do |version|
        [ %w[env push -d staging], [ "deploy", "-P", "-d", "staging", "--version", version, "-q" ] ].each do |args|
          status, out = kamal_rs(*args)
          assert_equal 0, status, "setting the lab up: #{args.join(" ")}:\n#{out}"
        end
      end
    end

    def kamal_rs(*args, env: {})
      run_kamal_rs(APP, *args, env: env)
    end
end
