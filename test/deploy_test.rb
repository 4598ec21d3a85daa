require "test_helper"
require "openssl"
require "base64"
require "open3"
require "timeout"
require_relative "lab_helpers"

# deploy / redeploy on three real lab hosts (web with kamal-proxy on two, workers on one), with a
# destination, env clear/secret/tags and hooks, through the CLI, the Ruby API and a Rake task.
class DeployTest < Minitest::Test
  include LabHelpers

  APP = File.join(FIXTURES, "deploy_app")
  WEB = %w[10.213.0.11 10.213.0.12].freeze
  WORKER = "10.213.0.13".freeze
  SECRETS = [ "s3cr3t pass#word", "tok-abc" ].freeze

  def self.lab
    @lab ||= LabHelpers.fresh_lab(3)
  end

  def setup
    require_root
    self.class.lab
    @markers = Dir.mktmpdir("hooks")
    given_deployed(web: WEB) { given_serving("v1") }
  end

  def teardown
    FileUtils.rm_rf(@markers) if @markers
  end

  def test_01_deploy_v1_through_the_cli
    wipe_app([ *WEB, WORKER ], service: "app", sd: "app-staging")
    Lab.reset_transcripts
    status, out = kamal_rs("deploy", "-P", "-d", "staging", "--version", "v1")
    assert_equal 0, status, out
    assert_one_connection_per_host
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
    assert_equal "app-workers-staging-v1 running", docker(WORKER, "ps --format '{{.Names}} {{.State}}' --filter label=role=workers").strip
    assert_match(/^  Finished all in \d+\.\d seconds$/, out)
    SECRETS.each { |s| refute_includes out, s, "a secret leaked into the output" }

    # Containers, labels, env, env file (0600), audit lines, lock: Kamal's names and formats.
    labels = docker(WEB[1], "inspect app-web-staging-v1 --format '{{json .Config.Labels}}'")
    assert_equal({ "service" => "app", "role" => "web", "destination" => "staging", "team" => "platform" }, JSON.parse(labels))
    env = docker(WEB[1], "inspect app-web-staging-v1 --format '{{range .Config.Env}}{{println .}}{{end}}'").lines.map(&:chomp)
    %w[KAMAL_CONTAINER_NAME=app-web-staging-v1 KAMAL_VERSION=v1 KAMAL_HOST=10.213.0.12 KAMAL_DESTINATION=staging GREETING=hello
       STAGE=staging CANARY=yes].each { |e| assert_includes env, e }
    assert_includes env, "DB_PASSWORD=s3cr3t pass#word"
    assert_includes env, "API_TOKEN=tok-abc"
    refute env.any? { |e| e.start_with?("EMPTY=") }, "an empty clear value is the bare --env KEY (unset remotely)"
    refute_includes docker(WEB[0], "inspect app-web-staging-v1 --format '{{range .Config.Env}}{{println .}}{{end}}'"), "CANARY"
    assert_includes docker(WORKER, "inspect app-workers-staging-v1 --format '{{range .Config.Env}}{{println .}}{{end}}'"), "WORKER=1"
    assert_equal "unless-stopped kamal json-file", docker(WEB[0], "inspect app-web-staging-v1 --format '{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}} {{.HostConfig.LogConfig.Type}}'").strip
    assert_match(/\A10\.213\.0\.11-[0-9a-f]{12}\n\z/, docker(WEB[0], "inspect app-web-staging-v1 --format '{{.Config.Hostname}}'"))

    stat, = remote(WEB[0], "stat -c '%a %s' .kamal/apps/app-staging/env/roles/web.env && cat .kamal/apps/app-staging/env/roles/web.env")
    assert_equal "600 53\nDB_PASSWORD=s3cr3t pass#word\nAPI_TOKEN=tok-abc\n", stat.sub(/\A600 \d+/, "600 53")
    audit, = remote(WEB[0], "cat .kamal/app-staging-audit.log")
    line = /\A\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] \[[^\]]+\] \[staging\]/
    assert_equal [ "Pulled image with version v1", "[web] Booted app version v1", "Tagging 10.213.0.1:5000/app:v1 as the latest image",
                   "Pruned containers", "Pruned images" ], audit.lines.map { |l| assert_match(line, l); l.sub(line, "").strip }
    assert_equal "", remote(WEB[0], "ls -d .kamal/lock-app-staging 2>/dev/null").first, "lock released"
    assert_includes docker(WEB[0], "image ls --format '{{.Repository}}:{{.Tag}}'"), "10.213.0.1:5000/app:latest-staging"
    assert_includes docker(WEB[0], "exec kamal-proxy kamal-proxy list"), "app-web-staging"

    # Hooks ran in order, with Kamal's environment.
    hooks = hook_markers
    assert_equal %w[pre-connect pre-deploy pre-app-boot post-app-boot post-deploy], hooks.map(&:first)
    pre_deploy = hooks.assoc("pre-deploy").last
    assert_equal "true", pre_deploy["KAMAL_LOCK"]
    assert_equal "1", pre_deploy["SECRET_SEEN"], "pre-deploy gets the secrets"
    assert_equal "false", hooks.assoc("pre-connect").last["KAMAL_LOCK"]
    assert_equal({ "KAMAL_COMMAND" => "deploy", "KAMAL_DESTINATION" => "staging", "KAMAL_VERSION" => "v1", "KAMAL_SERVICE" => "app",
                   "KAMAL_SERVICE_VERSION" => "app@v1", "KAMAL_HOSTS" => "10.213.0.11,10.213.0.12,10.213.0.13" },
      pre_deploy.slice("KAMAL_COMMAND", "KAMAL_DESTINATION", "KAMAL_VERSION", "KAMAL_SERVICE", "KAMAL_SERVICE_VERSION", "KAMAL_HOSTS"))
    assert_match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\z/, pre_deploy["KAMAL_RECORDED_AT"])
    refute_empty pre_deploy["KAMAL_PERFORMER"].to_s
    assert_match(/\A\d+\z/, hooks.assoc("post-deploy").last["KAMAL_RUNTIME"])
    assert_nil hooks.assoc("pre-app-boot").last["SECRET_SEEN"], "app-boot hooks get no secrets"
  end

  def test_02_redeploy_v2_through_the_ruby_api_keeps_other_threads_running
    wipe_app([ *WEB, WORKER ], service: "app", sd: "app-staging")
    given_serving("v1")
    Lab.reset_transcripts
    ticks = 0
    ticker = Thread.new { loop { ticks += 1; sleep 0.01 } }
    result = in_app { KamalRs.redeploy(destination: "staging", version: "v2", skip_push: true, quiet: true) }
    ticker.kill
    assert_one_connection_per_host
    assert result.success?
    assert_operator ticks, :>, 20, "other Ruby threads ran while the deploy did (GVL released)"
    assert_equal "v2", result.version
    assert_equal [ :live ], result.hosts.flat_map { |h| h[:roles].map { |r| r[:state] } }.uniq
    assert_equal "v1", result.hosts.first[:roles].first[:old_version]
    WEB.each { |ip| assert_equal "app v2\n", http_get(ip) }
    assert_equal [ "app-web-staging-v2 running", "app-web-staging-v1 exited" ], docker(WEB[0], "ps -a --format '{{.Names}} {{.State}}' --filter label=role=web").lines.map(&:strip)
    assert_equal [ "app-workers-staging-v2 running", "app-workers-staging-v1 exited" ], docker(WORKER, "ps -a --format '{{.Names}} {{.State}}' --filter label=role=workers").lines.map(&:strip)
  end

  def test_03_an_unhealthy_version_fails_and_leaves_v2_serving
    given_serving("v2")
    status, out = kamal_rs("deploy", "-P", "-d", "staging", "--version", "unhealthy", env: { "DEPLOY_TIMEOUT" => "3" })
    assert_equal 1, status, out
    assert_includes out, "Failed to boot web on 10.213.0.1"
    assert_includes out, "  \e[31mERROR (SSHKit::Command::Failed): Exceptions on 3 hosts:\n"
    assert_includes out, "Exception while executing on host 10.213.0.11: docker exit status: 1\ndocker stdout: Nothing written\n" \
                         "docker stderr: Error: target failed to become healthy within configured timeout (3s)"
    assert_includes out, "Exception while executing on host 10.213.0.13: Halted at barrier"
    WEB.each do |ip|
      assert_equal "app v2\n", http_get(ip)
      assert_equal "app-web-staging-unhealthy exited", docker(ip, "ps -a --format '{{.Names}} {{.State}}' --filter name=app-web-staging-unhealthy").strip
    end
    assert_equal "", docker(WORKER, "ps -a -q --filter name=app-workers-staging-unhealthy"), "workers never booted (halted at the barrier)"
    assert_equal "", remote(WEB[0], "ls -d .kamal/lock-app-staging 2>/dev/null").first, "lock released"
    assert_equal docker(WEB[0], "image inspect -f '{{.Id}}' 10.213.0.1:5000/app:v2"), docker(WEB[0], "image inspect -f '{{.Id}}' 10.213.0.1:5000/app:latest-staging")
    assert_includes out, "10.213.0.11: web: boot failed, old version v2 still serving"
  end

  def test_04_a_held_lock_fails_and_lock_wait_waits_for_it
    details = Base64.encode64("Locked by: someone at 2026-01-01T00:00:00Z\nVersion: v9\nMessage: Automatic deploy lock")
    remote(WEB[0], %(mkdir -p .kamal && mkdir .kamal/lock-app-staging && echo "#{details}" > .kamal/lock-app-staging/details))
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v2")
    assert_equal 1, status
    assert_includes out, "Deploy lock already in place!"
    assert_includes out, "Locked by: someone at 2026-01-01T00:00:00Z"
    assert_includes out, "  \e[31mERROR (Kamal::Cli::LockError): Deploy lock found. Run 'kamal lock help' for more information\e[0m"

    # The lock is released once the waiting run has found it held twice (retrying every second).
    Lab.reset_transcripts
    lock_tries = -> { Lab.transcript(WEB[0]).count { |c| c[:command].include?("mkdir .kamal/lock-app-staging") && c[:status] != 0 } }
    releaser = Thread.new do
      Lab.wait_until(what: "the redeploy to find the lock held twice", timeout: 60, saw: -> { "#{lock_tries.call} tries" }) { lock_tries.call >= 2 }
      remote(WEB[0], "rm .kamal/lock-app-staging/details && rm -r .kamal/lock-app-staging")
    end
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v2", "--lock-wait", "--lock-wait-interval", "1")
    releaser.join
    assert_equal 0, status, out
    assert_includes out, "Deploy lock is held by:"
    assert_includes out, "Retrying in 1s"
  end

  def test_05_redeploy_through_a_rake_task
    out, status = Open3.capture2e({ "DESTINATION" => "staging", "VERSION" => "v1", "SKIP_PUSH" => "1", "QUIET" => "1",
                                    "RUBYLIB" => File.join(ROOT, "lib") }, "rake", "kamal_rs:redeploy", chdir: APP)
    assert status.success?, out
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
  end

  def test_06_boot_limit_1_boots_one_host_at_a_time
    Lab.reset_transcripts
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v2", env: { "BOOT_LIMIT" => "1" })
    assert_equal 0, status, out
    boots = [ *WEB, WORKER ].map do |ip|
      b = Lab.transcript(ip).find { |l| l[:command].include?("docker run --detach") }
      assert b && b[:ended], "boot on #{ip} recorded with its end"
      [ b[:time], b[:ended] ]
    end.sort
    boots.each_cons(2) { |(_, end1), (start2, _)| assert_operator start2, :>=, end1, "two hosts booted at once: #{boots.inspect}" }
    assert_equal 3, hook_markers.count { |name, _| name == "pre-app-boot" }, "one pre-app-boot per group"
  end

  def test_07_ctrl_c_during_the_boot_releases_the_lock_and_keeps_the_old_version
    given_serving("v2")
    out = +""
    status = nil
    env = { "KAMAL_HOOK_MARKERS" => @markers, "SLOW_HOOK" => "20", "RUBYLIB" => File.join(ROOT, "lib") }
    started = Time.now
    Open3.popen2e(env, RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), "redeploy", "-P", "-d", "staging", "--version", "v1", chdir: APP) do |_in, io, thread|
      reader = Thread.new { io.each_line { |l| out << l } }
      # Ctrl-C while the (slow) pre-app-boot hook runs, right before the boots.
      Lab.wait_until(what: "the pre-app-boot hook to run", timeout: 30, saw: -> { out }) do
        out.include?("Start container with version v1") && !Dir[File.join(@markers, "pre-app-boot.*")].empty?
      end
      Process.kill("INT", thread.pid)
      status = thread.value.exitstatus
      reader.join
    end
    assert_equal 130, status, out
    assert_operator Time.now - started, :<, 15, "stopped promptly"
    assert_equal "", remote(WEB[0], "ls -d .kamal/lock-app-staging 2>/dev/null").first, "lock released"
    WEB.each { |ip| assert_equal "app v2\n", http_get(ip), "old version still serving" }
    assert_includes out, "10.213.0.11: web: not booted, old version v2 still serving"
  end

  def test_08_an_unreachable_host_fails_clearly_without_hanging
    given_serving("v2")
    Dir.mktmpdir do |dir|
      FileUtils.cp_r(Dir.glob(File.join(APP, "{config,.kamal}")), dir)
      path = File.join(dir, "config", "deploy.yml")
      File.write(path, File.read(path).sub("- 10.213.0.13", "- 10.213.0.250"))
      started = Time.now
      status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v1", dir: dir)
      assert_equal 1, status
      assert_operator Time.now - started, :<, 40
      assert_match(/ERROR \(KamalRs::ConnectionError\): Exception while executing on host 10\.213\.0\.250: could not connect/, out)
      assert_includes out, "10.213.0.250: "
      assert_equal "", remote(WEB[0], "ls -d .kamal/lock-app-staging 2>/dev/null").first
      WEB.each { |ip| assert_equal "app v2\n", http_get(ip) }
    end
  end

  def test_09_timeout_in_ruby_stops_the_deploy_cleanly
    given_serving("v2")
    ENV["SLOW_HOOK"] = "20"
    started = Time.now
    assert_raises(Timeout::Error) do
      in_app { Timeout.timeout(3) { KamalRs.redeploy(destination: "staging", version: "v1", skip_push: true, quiet: true) } }
    end
    assert_operator Time.now - started, :<, 12
    assert_equal "", remote(WEB[0], "ls -d .kamal/lock-app-staging 2>/dev/null").first, "lock released"
    WEB.each { |ip| assert_equal "app v2\n", http_get(ip) }
  ensure
    ENV.delete("SLOW_HOOK")
  end

  def test_10_a_failing_pre_deploy_hook_stops_before_any_change
    given_serving("v2")
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v1", env: { "FAIL_PRE_DEPLOY" => "1" })
    assert_equal 1, status
    assert_includes out, "ERROR (Kamal::Cli::HookError): Hook `pre-deploy` failed:"
    assert_includes out, "pre-deploy says no"
    assert_equal "", remote(WEB[0], "ls -d .kamal/lock-app-staging 2>/dev/null").first
    WEB.each { |ip| assert_equal "app v2\n", http_get(ip) }
  end

  def test_11_error_pages_and_custom_tls_certificates
    Dir.mktmpdir do |dir|
      FileUtils.cp_r(Dir.glob(File.join(APP, "{config,.kamal}")), dir)
      FileUtils.mkdir_p(File.join(dir, "public"))
      File.write(File.join(dir, "public", "404.html"), "<h1>not here</h1>\n")
      File.write(File.join(dir, "public", "502.html"), "<h1>gone</h1>\n")
      File.write(File.join(dir, "public", "index.html"), "not an error page\n")
      # A real certificate: the real kamal-proxy loads it before it takes the deploy.
      cert, key = self_signed_certificate("app.example.com")
      File.open(File.join(dir, ".kamal", "secrets.staging"), "a") do |f|
        f.puts %(CERT_PEM="#{cert.strip}")
        f.puts %(KEY_PEM="#{key.strip}")
      end
      key_line = key.lines[1].strip
      path = File.join(dir, "config", "deploy.yml")
      File.write(path, File.read(path) + <<~YAML)
        error_pages_path: public
        proxy:
          host: app.example.com
          ssl:
            certificate_pem: CERT_PEM
            private_key_pem: KEY_PEM
      YAML
      status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v1", dir: dir)
      assert_equal 0, status, out
      refute_includes out, key_line
      assert_includes out, "Writing SSL certificates for web on 10.213.0.11"
      assert_includes out, %(--tls-certificate-path="/home/kamal-proxy/.apps-config/app-staging/tls/web/cert.pem")
      assert_includes out, %(--error-pages="/home/kamal-proxy/.apps-config/app-staging/error_pages/v1")
      listing, = remote(WEB[0], "cd .kamal/proxy/apps-config/app-staging && stat -c '%a %n' error_pages/v1 error_pages/v1/* tls/web/*.pem && cat tls/web/key.pem error_pages/v1/404.html")
      assert_equal "755 error_pages/v1\n644 error_pages/v1/404.html\n644 error_pages/v1/502.html\n644 tls/web/cert.pem\n644 tls/web/key.pem\n" \
                   "#{key.strip}<h1>not here</h1>\n", listing
      # Served over TLS with that certificate (plain HTTP is redirected to it).
      out, = Open3.capture2("curl", "-s", "--max-time", "5", "--resolve", "app.example.com:443:#{WEB[1]}",
                            "--cacert", "/dev/stdin", "https://app.example.com/", stdin_data: cert)
      assert_equal "app v1\n", out
    end
  end

  # A self-signed certificate and its key for `host`, as PEM: [certificate, key].
  def self_signed_certificate(host)
    key = OpenSSL::PKey::EC.generate("prime256v1")
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = 1
    cert.subject = cert.issuer = OpenSSL::X509::Name.parse("/CN=#{host}")
    cert.public_key = key
    cert.not_before = Time.now - 60
    cert.not_after = Time.now + 3600
    cert.sign(key, OpenSSL::Digest.new("SHA256"))
    [ cert.to_pem, key.private_to_pem ]
  end

  def test_12_a_stale_running_container_is_stopped_and_the_current_one_replaced
    status, out = kamal_rs("deploy", "-P", "-d", "staging", "--version", "v2")
    assert_equal 0, status, out
    # A leftover container of the role (say, from a failed deploy), newer than the current one.
    docker(WEB[0], "run -d --name app-web-staging-leftover --label service=app --label role=web --label destination=staging " \
                   "--network kamal 10.213.0.1:5000/app:v1")
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v1")
    assert_equal 0, status, out
    assert_includes out, "App Host: 10.213.0.11\nStopping stale container for role web with version leftover"
    states = docker(WEB[0], "ps -a --format '{{.Names}} {{.State}}' --filter label=role=web").lines.map(&:strip)
    assert_includes states, "app-web-staging-leftover exited"
    assert_includes states, "app-web-staging-v2 exited"
    assert_equal [ "app-web-staging-v1 running" ], states.grep(/ running\z/)
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }

    # The running version again: the live container is renamed, and it is the old one that is stopped.
    status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", "v1")
    assert_equal 0, status, out
    replaced = out[/Renaming container v1 to (v1_replaced_\h{16}) as already deployed on 10.213.0.11/, 1]
    assert replaced, out
    states = docker(WEB[0], "ps -a --format '{{.Names}} {{.State}}' --filter label=role=web").lines.map(&:strip)
    assert_equal [ "app-web-staging-v1 running" ], states.grep(/ running\z/)
    assert_includes states, "app-web-staging-#{replaced} exited"
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
  end

  def test_13_asset_path_is_extracted_synced_and_mounted
    Dir.mktmpdir do |dir|
      FileUtils.cp_r(Dir.glob(File.join(APP, "{config,.kamal}")), dir)
      path = File.join(dir, "config", "deploy.yml")
      File.write(path, File.read(path) + "asset_path: /www\n")
      %w[v1 v2].each do |version|
        status, out = kamal_rs("redeploy", "-P", "-d", "staging", "--version", version, dir: dir)
        assert_equal 0, status, out
      end
      dirs, = remote(WEB[0], "cd .kamal/apps/app-staging/assets && ls extracted volumes")
      assert_equal "extracted:\nweb-v2\n\nvolumes:\nweb-v2\n", dirs, "older versions' assets are removed after the switch"
      mounts = docker(WEB[0], "inspect app-web-staging-v2 --format '{{range .Mounts}}{{.Source}}:{{.Destination}}{{end}}'")
      assert_equal "/root/.kamal/apps/app-staging/assets/volumes/web-v2:/www\n", mounts
      WEB.each { |ip| assert_equal "app v2\n", http_get(ip) }
    end
  end

  # `kamal rollback`: under the lock, the version's containers booted again (no pull), latest tagged.
  def test_14_rollback_to_v1_boots_it_again_without_a_pull
    given_serving("v1", "v2")
    Lab.reset_transcripts
    status, out = kamal_rs("rollback", "v1", "-d", "staging")
    assert_equal 0, status, out
    assert_one_connection_per_host
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
    assert_equal [ "app-workers-staging-v1 running" ], docker(WORKER, "ps --format '{{.Names}} {{.State}}' --filter label=role=workers").lines.map(&:strip)
    assert_includes docker(WORKER, "ps -a --format '{{.Names}} {{.State}}' --filter name=app-workers-staging-v2"), "exited"
    [ *WEB, WORKER ].each do |ip|
      refute Lab.transcript(ip).any? { |l| l[:command].include?("docker pull") }, "#{ip}: a rollback pulls nothing"
    end
    assert_includes out, "docker container ls --all --filter 'name=^app-web-staging-v1$' --quiet"
    assert_equal docker(WEB[0], "image inspect -f '{{.Id}}' 10.213.0.1:5000/app:v1"), docker(WEB[0], "image inspect -f '{{.Id}}' 10.213.0.1:5000/app:latest-staging")
    assert_equal "", remote(WEB[0], "ls -d .kamal/lock-app-staging 2>/dev/null").first, "lock released"
    audit, = remote(WEB[0], "tail -2 .kamal/app-staging-audit.log")
    assert_match(/\[web\] Booted app version v1\n.*Tagging 10\.213\.0\.1:5000\/app:v1 as the latest image\n\z/, audit)
    hooks = hook_markers
    assert_equal %w[pre-connect pre-deploy pre-app-boot post-app-boot post-deploy], hooks.map(&:first)
    assert_equal({ "KAMAL_COMMAND" => "rollback", "KAMAL_VERSION" => "v1" }, hooks.assoc("pre-deploy").last.slice("KAMAL_COMMAND", "KAMAL_VERSION"))
  end

  def test_15_rollback_to_a_version_that_is_not_everywhere_changes_nothing
    given_serving("v1")
    docker(WEB[1], "run -d --name app-web-staging-only-here --label service=app --label role=web --label destination=staging 10.213.0.1:5000/app:v2 sleep 1")
    status, out = kamal_rs("rollback", "only-here", "-d", "staging")
    assert_equal 1, status, out
    assert_includes out, "Error looking for container version only-here: Exceptions on 2 hosts:\n"
    assert_includes out, "Exception while executing on host 10.213.0.11: Container not found\n"
    assert_includes out, "ERROR (RuntimeError): The app version 'only-here' is not available as a container (use 'kamal app containers' for available versions)"
    assert_includes out, "10.213.0.12: web: not booted, old version v1 still serving"
    refute_includes hook_markers.map(&:first), "pre-deploy"
    assert_equal "", remote(WEB[0], "ls -d .kamal/lock-app-staging 2>/dev/null").first, "lock released"
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
  end

  # Without a version (Kamal requires one): the newest version besides the running one that every host
  # and role still has; here v2 (only-here and the leftovers are not on every host).
  def test_16_rollback_without_a_version_through_the_ruby_api_and_rake
    given_serving("v2", "v1")
    result = in_app { KamalRs.rollback(destination: "staging", quiet: true) }
    assert result.success?
    assert_equal "v2", result.version
    assert_equal "v1", result.hosts.first[:roles].first[:old_version]
    WEB.each { |ip| assert_equal "app v2\n", http_get(ip) }

    out, status = Open3.capture2e({ "RUBYLIB" => File.join(ROOT, "lib"), "QUIET" => "1" }, "rake", "kamal_rs:rollback[staging,v1]", chdir: APP)
    assert status.success?, out
    WEB.each { |ip| assert_equal "app v1\n", http_get(ip) }
  end

  private
    # The deploy app's web hosts serving the last of `history` (LabHelpers#given_serving).
    def given_serving(*history)
      super(*history, web: WEB, hosts: [ *WEB, WORKER ]) do |version|
        status, out = kamal_rs("deploy", "-P", "-d", "staging", "--version", version, "-q")
        assert_equal 0, status, "setting the lab up: deploy #{version}:\n#{out}"
      end
      FileUtils.rm_rf(Dir[File.join(@markers, "*")])
    end

    def kamal_rs(*args, env: {}, dir: APP)
      run_kamal_rs(dir, *args, env: { "KAMAL_HOOK_MARKERS" => @markers }.merge(env), timeout: 120)
    end

    def in_app
      ENV["KAMAL_HOOK_MARKERS"] = @markers
      Dir.chdir(APP) { yield }
    ensure
      ENV.delete("KAMAL_HOOK_MARKERS")
    end

    # [[hook name, {KAMAL_...=>...}], ...] in the order they ran.
    def hook_markers
      Dir[File.join(@markers, "*")].sort_by { |f| f.split(".").last.to_i }.map do |f|
        [ File.basename(f).split(".").first, File.readlines(f, chomp: true).to_h { |l| l.split("=", 2) } ]
      end
    end

    def assert_one_connection_per_host
      super([ *WEB, WORKER ])
    end
end
