require "test_helper"
require "open3"
require "timeout"
require "securerandom"
require "socket"
require_relative "lab_helpers"

# `deploy` / `redeploy` without --skip-push: a real `docker buildx build` (the `docker` driver) on a lab
# dockerd standing in for the local Docker, pushing to the lab registry, then the rollout to two hosts.
# The app is a git repo made here, so the clone build, its reset and the version from HEAD are real.
class BuildTest < Minitest::Test
  include LabHelpers

  HOSTS = %w[10.213.0.11 10.213.0.12].freeze
  GIT_ENV = { "GIT_AUTHOR_NAME" => "Test", "GIT_AUTHOR_EMAIL" => "test@example.com",
              "GIT_COMMITTER_NAME" => "Test", "GIT_COMMITTER_EMAIL" => "test@example.com" }.freeze

  def self.app
    @app ||= begin
      LabHelpers.fresh_lab(2, builder: true)
      dir = Dir.mktmpdir("build-app")
      Minitest.after_run { FileUtils.rm_rf(dir) }
      FileUtils.cp_r(File.join(FIXTURES, "build_app", "."), dir)
      # A git repository from the start: each test commits what it builds.
      File.write(File.join(dir, "index.html"), "app built-0\n")
      File.write(File.join(dir, "nonce"), "#{Random.new_seed}\n")
      [ %w[init -q], %w[add -A], %w[commit -qm initial] ].each do |args|
        system(GIT_ENV, "git", *args, chdir: dir, out: File::NULL, exception: true)
      end
      dir
    end
  end

  def setup
    require_root
    flunk "docker buildx is not installed (script/setup installs it)" unless system("docker buildx version", out: File::NULL, err: File::NULL)
    @app = self.class.app
    given_deployed(web: HOSTS) { assert_equal 0, kamal_rs("deploy", "-P", "--version", "v1").first }
  end

  def test_01_deploy_builds_the_committed_tree_pushes_and_rolls_out
    write("index.html", "app built-1\n")
    write("nonce", "#{Random.new_seed}\n")
    git("add", "-A")
    git("commit", "-qm", "first")
    write("index.html", "uncommitted\n")
    sha = git("rev-parse", "HEAD").strip

    Lab.reset_transcripts
    status, out, lines = kamal_rs("deploy")
    assert_equal 0, status, out
    assert_one_connection_per_host(HOSTS)
    assert_includes out, "Build and push app image...\n"
    assert_includes out, "Building from a local git clone, so ignoring these uncommitted changes:\n M index.html\n"
    assert_match %r{Cloning repo into build directory `/tmp/kamal-clones/app-[0-9a-f]{13}/build-app[^/]*`}, out
    assert_includes out, "Running docker buildx build --output=type=registry --platform linux/amd64 -t 10.213.0.1:5000/app:#{sha} " \
                         "-t 10.213.0.1:5000/app:latest --label service=\"app\" --build-arg GREETING=[REDACTED] --secret id=\"BUILD_SECRET\" --file Dockerfile . 2>&1 on localhost"
    refute_includes out, "s3cr3t-build", "a build secret leaked"

    # Streamed: the build's first output line arrived well before its last (the Dockerfile sleeps 1 s between).
    step1 = lines.find { |t, l| l.include?("DEBUG") && l.include?("echo step1") }&.first
    build_id = out[/\[(\h{8})\] Running docker buildx build/, 1]
    finished = lines.find { |_, l| l.include?("[#{build_id}] Finished in ") }&.first
    assert step1 && finished, out
    assert_operator finished - step1, :>=, 0.8, "build output arrived only at the end"

    HOSTS.each { |ip| assert_equal "app built-1\n", http_get(ip), "the committed tree is deployed, not the uncommitted change" }
    assert_equal "app-web-#{sha} running", docker(HOSTS[1], "ps --format '{{.Names}} {{.State}}' --filter label=role=web").strip
    assert_equal "app\n", docker(HOSTS[0], "image inspect -f '{{ .Config.Labels.service }}' 10.213.0.1:5000/app:#{sha}")
    assert_equal "secret=s3cr3t-build greeting=hello\n", docker(HOSTS[0], "exec app-web-#{sha} cat /www/built-with")
    git("checkout", "-q", "index.html")
  end

  def test_02_redeploy_resets_the_existing_clone_and_builds_the_new_head
    # The clone a deploy before this one left (made by one when there is none).
    unless Dir.exist?(clone_dir)
      status, out, = kamal_rs("deploy")
      assert_equal 0, status, "setting the lab up: a first deploy:\n#{out}"
    end
    write("index.html", "app built-2\n")
    git("commit", "-qam", "second", "--allow-empty")
    sha = git("rev-parse", "HEAD").strip
    status, out, = kamal_rs("redeploy")
    assert_equal 0, status, out
    assert_match %r{Resetting local clone as `/tmp/kamal-clones/app-[0-9a-f]{13}/build-app[^`]*` already exists\.\.\.}, out
    assert_includes out, "git -C /tmp/kamal-clones/"
    HOSTS.each { |ip| assert_equal "app built-2\n", http_get(ip) }
    assert_equal "app-web-#{sha} running", docker(HOSTS[0], "ps --format '{{.Names}} {{.State}}' --filter label=role=web").strip
  end

  def test_03_a_failing_build_touches_no_server_and_never_takes_the_lock
    unless HOSTS.all? { |ip| http_get(ip) == "app built-2\n" }
      write("index.html", "app built-2\n")
      git("commit", "-qam", "second", "--allow-empty")
      status, out, = kamal_rs("deploy")
      assert_equal 0, status, "setting the lab up: deploy built-2:\n#{out}"
    end
    File.write(File.join(@app, "Dockerfile"), File.read(File.join(@app, "Dockerfile")) + "COPY no-such-file /www/\n")
    git("commit", "-qam", "broken")
    Lab.reset_transcripts
    status, out, = kamal_rs("deploy")
    assert_equal 1, status, out
    assert_match(/ERROR \(SSHKit::Command::Failed\): docker exit status: 1\ndocker stdout: .*no-such-file/m, out)
    refute_includes out, "Acquiring the deploy lock"
    HOSTS.each do |ip|
      assert_empty Lab.transcript(ip).map { |l| l[:command] }, "#{ip} ran commands after a failed build"
      assert_equal "app built-2\n", http_get(ip)
    end
    assert_equal "", remote(HOSTS[0], "ls -d .kamal/lock-app 2>/dev/null").first
  ensure
    git("revert", "--no-edit", "HEAD") if @app
  end

  def test_04_a_missing_dockerfile_fails_before_the_build
    status, out, = kamal_rs("deploy", env: { "DOCKERFILE" => "Nope.Dockerfile" })
    assert_equal 1, status, out
    assert_includes out, "ERROR (Kamal::Cli::Build::BuildError): Missing Nope.Dockerfile"
    refute_includes out, "Running docker buildx build"
  end

  # No hooks here: each host goes from its pull to its boot on its own (the per-host rollout).
  def test_05_per_host_rollout_an_unpullable_or_unhealthy_version_changes_nothing
    before = http_get(HOSTS[0])
    status, out, = kamal_rs("redeploy", "-P", "--version", "no-such-version")
    assert_equal 1, status, out
    assert_includes out, "docker pull 10.213.0.1:5000/app:no-such-version"
    status, out, = kamal_rs("redeploy", "-P", "--version", "unhealthy", env: { "DEPLOY_TIMEOUT" => "2" })
    assert_equal 1, status, out
    assert_includes out, "target failed to become healthy"
    HOSTS.each do |ip|
      assert_equal before, http_get(ip)
      assert_equal "", remote(ip, "ls -d .kamal/lock-app 2>/dev/null").first, "lock released"
    end
  end

  def test_06_a_kamal_1x_app_builds_with_1_9s_native_builder
    dir = Dir.mktmpdir("build-app-v1")
    File.write(File.join(dir, "Dockerfile"), "FROM 10.213.0.1:5000/app:v1\nCOPY index.html /www/index.html\n")
    File.write(File.join(dir, "index.html"), "app 1.x built\n")
    File.write(File.join(dir, ".env"), "KAMAL_REGISTRY_PASSWORD=lab\n")
    FileUtils.mkdir_p(File.join(dir, "config"))
    File.write(File.join(dir, "config", "deploy.yml"), <<~YAML)
      service: app1
      image: app
      servers: [ #{HOSTS.join(", ")} ]
      registry: { server: 10.213.0.1:5000, username: lab, password: [ KAMAL_REGISTRY_PASSWORD ] }
      builder: { multiarch: false }
      healthcheck: { port: 80 }
      traefik: { host_port: 8080 }
      ssh: { keys: [ #{Lab::KEY} ], config: #{Lab::SSH_CONFIG} }
    YAML
    [ %w[init -q], %w[add -A], %w[commit -qm one] ].each { |a| git(*a, dir: dir) }
    sha = git("rev-parse", "HEAD", dir: dir).strip
    status, out, = kamal_rs("env", "push", dir: dir)
    assert_equal 0, status, out
    status, out, = kamal_rs("deploy", dir: dir)
    assert_equal 0, status, out
    assert_includes out, "Running docker build -t 10.213.0.1:5000/app:#{sha} -t 10.213.0.1:5000/app:latest --label service=\"app1\" --file Dockerfile . " \
                         "&& docker push 10.213.0.1:5000/app:#{sha} && docker push 10.213.0.1:5000/app:latest on localhost"
    HOSTS.each do |ip|
      out, = Open3.capture2("curl", "-s", "--max-time", "5", "http://#{ip}:8080/")
      assert_equal "app 1.x built\n", out
    end
  ensure
    HOSTS.each { |ip| remote(ip, "docker rm -f traefik $(docker ps -aq --filter label=service=app1) >/dev/null 2>&1") } if dir
    FileUtils.rm_rf(dir) if dir
  end

  # A `localhost:<port>` registry (Kamal 2.8+): no login, and each app host reaches this machine's
  # registry through an SSH reverse forward. Here a relay on 127.0.0.1 stands for the local registry.
  def test_07_a_localhost_registry_is_pulled_through_a_reverse_forward
    dir = Dir.mktmpdir("local-registry")
    FileUtils.mkdir_p(File.join(dir, "config"))
    File.write(File.join(dir, "config", "deploy.yml"), <<~YAML)
      service: app
      servers: [ #{HOSTS.join(", ")} ]
      registry: { server: "localhost:5757" }
      builder: { arch: amd64 }
      ssh: { keys: [ #{Lab::KEY} ], config: #{Lab::SSH_CONFIG} }
    YAML
    Lab.reset_transcripts
    status, out, = with_registry_relay { kamal_rs("redeploy", "-P", "--version", "v1", dir: dir) }
    assert_equal 0, status, out
    HOSTS.each do |ip|
      assert_equal "app v1\n", http_get(ip)
      commands = Lab.transcript(ip).map { |l| l[:command] }.join("\n")
      assert_includes commands, "docker pull localhost:5757/app:v1"
      refute_includes commands, "docker login", "no login for a local registry"
    end
  ensure
    FileUtils.rm_rf(dir) if dir
  end

  # `--no-cache` reaches `docker buildx build` from each entry point, and the build then uses no cache.
  def test_08_no_cache_from_the_cli_the_ruby_api_and_a_rake_task
    File.write(File.join(@app, "Rakefile"), %(require "kamal_rs/tasks"\n))
    git("add", "Rakefile")
    git("commit", "-qm", "rakefile", "--allow-empty")
    api = %(require "kamal_rs"; KamalRs.redeploy(no_cache: true))
    [ [ "redeploy", "--no-cache" ],
      [ RbConfig.ruby, "-e", api ],
      [ RbConfig.ruby, "-S", "rake", "kamal_rs:redeploy", "NO_CACHE=1" ] ].each do |command|
      status, out, = kamal_rs(*command)
      assert_equal 0, status, "#{command.inspect}\n#{out}"
      assert_match(/Running docker buildx build --output=type=registry .* --file Dockerfile --no-cache \. 2>&1 on localhost/, out, command.inspect)
      # Only the base image is "CACHED"; every step of the Dockerfile ran again.
      refute_match(%r{\[[2-5]/5\][^\n]*\n[^\n]*#\d+ CACHED}, out, "#{command.inspect}: a step came from the cache")
    end
  end

  private
    # The build clone of this app (Kamal: /tmp/kamal-clones/<service>-<13 hex digits of the app's path>/<app dir>).
    def clone_dir
      Dir.glob("/tmp/kamal-clones/app-*/#{File.basename(@app)}").first.to_s
    end

    def write(file, content)
      File.write(File.join(@app, file), content)
    end

    def git(*args, dir: @app)
      out, status = Open3.capture2e(GIT_ENV, "git", *args, chdir: dir)
      assert status.success?, out
      out
    end

    # [exit status, output, [[seconds since start, line], ...]]: lines timed as they arrive. `args` are
    # kamal-rs's, or a whole command (starting with the path of ruby).
    def kamal_rs(*args, env: {}, dir: @app)
      full_env = { "RUBYLIB" => File.join(ROOT, "lib"), "DOCKER_HOST" => "unix://#{Lab::BUILDER_SOCKET}" }.merge(env)
      command = args.first == RbConfig.ruby ? args : [ RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), *args ]
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      lines = []
      status = Timeout.timeout(180) do
        Open3.popen2e(full_env, *command, chdir: dir) do |_in, io, thread|
          io.each_line { |l| lines << [ Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, l.chomp ] }
          thread.value
        end
      end
      [ status.exitstatus, lines.map(&:last).join("\n") + "\n", lines ]
    end
end
