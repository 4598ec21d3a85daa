require "test_helper"
require "open3"

class CliTest < Minitest::Test
  include CliHelpers

  def test_version_prints_the_gem_version
    status, out, = kamal_rs("version", dir: ROOT)
    assert_equal [ 0, "#{KamalRs::VERSION}\n" ], [ status, out ]
  end

  def test_kamal_release_constant_beside_the_gem_version
    assert_equal "2.12.0", KamalRs::KAMAL_VERSION
    assert_equal KamalRs::KAMAL_VERSION, KamalRs::Native.kamal_version
  end

  # The core names Kamal's class in the run's logs (`# FAILED: <class>: ...`), the command line in its
  # ERROR line: the same class for each failure.
  def test_each_error_names_the_class_kamal_raises
    KamalRs::Native.error_classes.each do |ruby, kamal|
      assert_equal kamal, KamalRs.const_get(ruby).kamal_name, ruby
    end
  end

  LOCKFILE = "GEM\n  remote: https://rubygems.org/\n  specs:\n    kamal (%s)\n\nPLATFORMS\n  ruby\n\n" \
             "DEPENDENCIES\n  kamal\n\nBUNDLED WITH\n   2.5.22\n"

  # The app's Gemfile.lock says which Kamal it runs: a locked Kamal 2 reads a config without
  # builder.arch as Kamal 2.12 does (an error) where its keys alone read an early 1.x config; a
  # deploy names a locked release other than 2.12.0 first. BUNDLE_GEMFILE's lockfile wins over the
  # working directory's.
  def test_the_apps_locked_kamal_decides_which_kamal_the_config_is_for
    Dir.mktmpdir do |dir|
      FileUtils.mkdir_p(File.join(dir, "config"))
      File.write(File.join(dir, "config", "deploy.yml"),
                 "service: app\nimage: app\nservers: [ 127.0.0.1 ]\nregistry: { username: u, password: p }\nssh: { port: 1 }\n")
      status, out, = kamal_rs("config", "--version", "v1", dir: dir)
      assert_equal 0, status, out
      assert_includes out, ":healthcheck:", "no lockfile: read as an early 1.x config"

      File.write(File.join(dir, "Gemfile.lock"), format(LOCKFILE, "2.10.1"))
      status, out, = kamal_rs("config", "--version", "v1", dir: dir)
      assert_equal [ 1, "  \e[31mERROR (Kamal::ConfigurationError): builder: Builder arch not set\e[0m\n" ], [ status, out ]

      other = File.join(dir, "other")
      FileUtils.mkdir_p(other)
      File.write(File.join(other, "Gemfile.lock"), format(LOCKFILE, "1.9.3"))
      status, out, = kamal_rs("config", "--version", "v1", dir: dir, env: { "BUNDLE_GEMFILE" => File.join(other, "Gemfile") })
      assert_equal 0, status, out
      assert_includes out, ":healthcheck:", "a locked 1.9.3 reads it as 1.x"

      File.write(File.join(dir, "config", "deploy.yml"), "builder: { arch: amd64 }\n", mode: "a")
      status, out = kamal_rs_process("deploy", "-P", "--version", "v1", dir: dir)
      assert_equal 1, status
      assert_includes out, "#{File.realpath(dir)}/Gemfile.lock locks kamal 2.10.1: kamal_rs deploys as Kamal 2.12.0 does"
      assert_equal 1, out.scan("locks kamal").size

      File.write(File.join(dir, "Gemfile.lock"), "<<<<<<< HEAD\n" + format(LOCKFILE, "2.12.0"))
      status, out = kamal_rs_process("deploy", "-P", "--version", "v1", dir: dir)
      assert_equal 1, status
      assert_includes out, "Gemfile.lock could not be read (line 1: a merge conflict marker): which Kamal the config is for is read from its keys"
    end
  end

  # `kamal-rs ARGS` as a process (the native run prints to the process's stdout): [status, output].
  def kamal_rs_process(*args, dir:)
    out, status = Open3.capture2e({ "RUBYLIB" => File.join(ROOT, "lib") }, RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), *args, chdir: dir)
    [ status.exitstatus, out ]
  end

  def test_help_lists_commands_and_kamal_option_letters
    _, out, = kamal_rs("help", dir: ROOT)
    assert_includes out, "kamal-rs deploy"
    assert_includes out, "-h, [--hosts=HOSTS]"
    assert_includes out, "-H, [--skip-hooks]"
    assert_includes out, "    [--version=VERSION]"
  end

  def test_help_names_rollback_and_the_commands_handed_to_kamal
    _, out, = kamal_rs("help", dir: ROOT)
    assert_includes out, "kamal-rs rollback [VERSION]"
    assert_match(/handed to Ruby Kamal.*\n  accessory, app, audit, build,/, out)
  end

  # Kamal's other commands go to Ruby Kamal, same arguments, its output and exit status: here a stand-in
  # `kamal` found on PATH (no Kamal gem in the test environment).
  def test_other_commands_are_handed_to_kamal_on_path
    Dir.mktmpdir do |bin|
      File.write(File.join(bin, "kamal"), <<~SH)
        #!/bin/sh
        echo "kamal got: $* (guard=$KAMAL_RS_HANDED_OVER)"
        exit 7
      SH
      File.chmod(0o755, File.join(bin, "kamal"))
      env = { "PATH" => "#{bin}:#{ENV["PATH"]}" }
      [ %w[app logs -d staging --lines 5], %w[lock release], %w[env delete], %w[help app] ].each do |argv|
        out, status = run_exe(argv, env)
        assert_equal [ 7, "kamal got: #{argv.join(" ")} (guard=1)\n" ], [ status.exitstatus, out ]
      end
      out, status = run_exe(%w[lock status], env.merge("KAMAL_RS_KAMAL" => "echo explicit"))
      assert_equal [ 0, "explicit lock status\n" ], [ status.exitstatus, out ]
      out, status = run_exe(%w[app logs], env.merge("KAMAL_RS_HANDED_OVER" => "1"))
      assert_equal 1, status.exitstatus
      assert_includes out, "ERROR (KamalRs::KamalNotFound): `kamal app logs` came back to kamal-rs"
    end
  end

  def test_a_kamal_command_without_kamal_installed_says_what_to_do
    out, status = run_exe(%w[accessory boot db], { "PATH" => File.dirname(RbConfig.ruby) })
    assert_equal 1, status.exitstatus
    assert_includes out, "ERROR (KamalRs::KamalNotFound): `accessory` is one of Kamal's commands"
    assert_includes out, %(add `gem "kamal"` to the Gemfile)
  end

  def test_unknown_switch_exits_1
    status, _, err = kamal_rs("config", "--nope", dir: ROOT)
    assert_equal 1, status
    assert_includes err, %(Unknown switches "--nope")
  end

  def test_underscore_options_are_accepted_like_thor
    dir = File.join(FIXTURES, "configs", "minimal_array")
    status, out, = kamal_rs("config", "--config_file", "config/deploy.yml", dir: dir, env: { "VERSION" => "x" })
    assert_equal 0, status
    assert_includes out, ":version: x"
  end

  def test_the_executable_runs_as_a_process
    dir = File.join(FIXTURES, "configs", "minimal_array")
    out = IO.popen({ "VERSION" => "proc" }, [ RbConfig.ruby, "-I#{ROOT}/lib", "#{ROOT}/exe/kamal-rs", "config" ], chdir: dir, &:read)
    assert $?.success?
    assert_equal File.read(File.join(dir, "expected.yml")).sub("fixture", "proc").gsub("fixture", "proc"), out
  end

  # Hostile configs end in one ERROR line and exit 1, never a backtrace (Kamal prints one for both),
  # naming the file and what is wrong with it, before any host is looked at.
  def test_a_config_nested_ten_thousand_levels_deep_is_one_error_line
    [ "x: #{"[" * 10_000}#{"]" * 10_000}", "x:\n" + (1..10_000).map { |i| "#{"  " * i}a:" }.join("\n") ].each do |deep|
      Dir.mktmpdir do |dir|
        FileUtils.mkdir_p(File.join(dir, "config"))
        file = File.join(File.realpath(dir), "config", "deploy.yml")
        File.write(file, "service: app\n#{deep}\n")
        %w[config deploy].each do |command|
          status, out, err = kamal_rs(command, dir: dir)
          assert_equal 1, status
          assert_equal "  \e[31mERROR (Kamal::ConfigurationError): #{file} is nested too deeply to be read " \
                       "(its YAML goes thousands of levels deep; a deploy config is a few)\e[0m\n", out
          assert_empty err
        end
      end
    end
  end

  def test_a_config_nested_past_the_models_depth_is_refused_clearly
    Dir.mktmpdir do |dir|
      FileUtils.mkdir_p(File.join(dir, "config"))
      File.write(File.join(dir, "config", "deploy.yml"), "service: app\nx: #{"[" * 500}#{"]" * 500}\n")
      status, out, = kamal_rs("config", dir: dir)
      assert_equal 1, status
      assert_includes out, "ERROR (Kamal::ConfigurationError): The configuration is nested more than 100 levels deep"
    end
  end

  def test_an_erb_load_error_is_one_error_line
    Dir.mktmpdir do |dir|
      FileUtils.mkdir_p(File.join(dir, "config"))
      File.write(File.join(dir, "config", "deploy.yml"), "<% require \"no_such_gem_here\" %>\nservice: app\n")
      status, out, err = kamal_rs("config", dir: dir)
      assert_equal 1, status
      assert_equal "  \e[31mERROR (LoadError): cannot load such file -- no_such_gem_here\e[0m\n", out
      assert_empty err
    end
  end

  # An ssh value that would add an ssh_config directive is refused before anything runs (a hook
  # included): nothing is executed on this machine.
  def test_an_injected_ssh_directive_is_refused_before_anything_runs
    Dir.mktmpdir do |dir|
      marker = File.join(dir, "ran")
      FileUtils.mkdir_p(File.join(dir, "config"))
      FileUtils.mkdir_p(File.join(dir, ".kamal", "hooks"))
      File.write(File.join(dir, ".kamal", "hooks", "pre-connect"), "#!/bin/sh\ntouch #{marker}.hook\n")
      File.chmod(0o755, File.join(dir, ".kamal", "hooks", "pre-connect"))
      File.write(File.join(dir, "config", "deploy.yml"), <<~YAML)
        service: app
        image: app
        servers: [ 192.0.2.1 ]
        registry: { username: u, password: p }
        builder: { arch: amd64 }
        ssh:
          user: "root\\n  ProxyCommand sh -c 'touch #{marker}'"
      YAML
      status, out, = kamal_rs("deploy", "-P", "--version", "v1", dir: dir)
      assert_equal 1, status
      assert_includes out, %(ERROR (Kamal::ConfigurationError): ssh/user: "root\\n  ProxyCommand sh -c 'touch #{marker}'" is not a user name)
      refute File.exist?(marker), "the injected command ran"
      refute File.exist?("#{marker}.hook"), "a hook ran before the check"

      File.write(File.join(dir, "config", "deploy.yml"), File.read(File.join(dir, "config", "deploy.yml"))
        .sub(/ssh:\n.*\n/, "").sub("192.0.2.1", "\"-oProxyCommand=touch #{marker}\""))
      status, out, = kamal_rs("deploy", "-P", "--version", "v1", dir: dir)
      assert_equal 1, status
      assert_includes out, %(ERROR (Kamal::ConfigurationError): servers: "-oProxyCommand=touch #{marker}" is not a host name)
      refute File.exist?(marker)
    end
  end

  private
    def run_exe(argv, env)
      Open3.capture2e({ "RUBYLIB" => File.join(ROOT, "lib") }.merge(env), RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), *argv, chdir: ROOT)
    end
end
