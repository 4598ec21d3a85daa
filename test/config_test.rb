require "test_helper"
require "open3"
require "yaml"

# `kamal-rs config` against fixtures: valid configs print what `kamal config` prints, byte for byte;
# invalid ones print Kamal's error line and exit 1.
class ConfigTest < Minitest::Test
  include CliHelpers

  VALID = Dir[File.join(FIXTURES, "configs", "*")].sort

  VALID.each do |dir|
    name = File.basename(dir)
    define_method("test_valid_#{name}") do
      args = File.exist?(File.join(dir, "args")) ? File.read(File.join(dir, "args")).split : []
      status, out, = kamal_rs("config", *args, dir: dir, env: { "VERSION" => "fixture" })
      assert_equal File.read(File.join(dir, "expected.yml")), out
      assert_equal 0, status
    end
  end

  # Each fixture beside Ruby Kamal 2.12 on the same files: the same output, exit status and warnings.
  # A 1.x fixture is read with a Gemfile.lock locking kamal 2.12.0, as in an app that moved to Kamal 2
  # without changing its config: both refuse it with the same line.
  def test_every_fixture_as_ruby_kamal_2_12_prints_it
    flunk "needs Ruby Kamal 2.12 (script/setup installs it as kamal-2.12, or set KAMAL_RS_TEST_KAMAL)" if RubyKamal.command.empty?
    Dir.mktmpdir do |lock|
      File.write(File.join(lock, "Gemfile.lock"), "GEM\n  specs:\n    kamal (2.12.0)\n\nDEPENDENCIES\n  kamal\n")
      env = { "VERSION" => "fixture", "BUNDLE_GEMFILE" => File.join(lock, "Gemfile") }
      VALID.each do |dir|
        args = File.exist?(File.join(dir, "args")) ? File.read(File.join(dir, "args")).split : []
        kamal = Open3.capture3(env, *RubyKamal.command, "config", *args, chdir: dir)
        ours = Open3.capture3(env.merge("RUBYLIB" => File.join(ROOT, "lib")), RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), "config", *args, chdir: dir)
        name = File.basename(dir)
        assert_equal kamal[0], ours[0], name
        assert_equal kamal[2].exitstatus, ours[2].exitstatus, name
        assert_equal kamal[1].lines.uniq, ours[1].lines.uniq, "#{name}: stderr"
      end
    end
  end

  # Every invalid case beside Ruby Kamal 2.12 (1.x cases too, read with kamal 2.12.0 locked): the same
  # ERROR line and exit status.
  def test_every_invalid_case_as_ruby_kamal_2_12_refuses_it
    flunk "needs Ruby Kamal 2.12 (script/setup installs it as kamal-2.12, or set KAMAL_RS_TEST_KAMAL)" if RubyKamal.command.empty?
    Dir.mktmpdir do |lock|
      File.write(File.join(lock, "Gemfile.lock"), "GEM\n  specs:\n    kamal (2.12.0)\n\nDEPENDENCIES\n  kamal\n")
      env = { "VERSION" => "v1", "BUNDLE_GEMFILE" => File.join(lock, "Gemfile") }
      [ INVALID, INVALID_V1 ].each do |set|
        set["cases"].each do |kase|
          Dir.mktmpdir do |dir|
            write_case(dir, kase, set["base"])
            args = [ "config", *Array(kase["args"]) ]
            kamal = Open3.capture3(env, *RubyKamal.command, *args, chdir: dir)
            ours = Open3.capture3(env.merge("RUBYLIB" => File.join(ROOT, "lib")), RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), *args, chdir: dir)
            assert_equal [ kamal[0], kamal[2].exitstatus ], [ ours[0], ours[2].exitstatus ], kase["name"]
          end
        end
      end
    end
  end

  INVALID = YAML.safe_load(File.read(File.join(FIXTURES, "invalid_configs.yml")))
  # Kamal 1.x configs, with Kamal 1.9.3's messages.
  INVALID_V1 = YAML.safe_load(File.read(File.join(FIXTURES, "invalid_configs_v1.yml")))

  [ INVALID, INVALID_V1 ].each do |set|
    set["cases"].each do |kase|
      define_method("test_invalid_#{kase["name"].tr(" ", "_")}") do
        Dir.mktmpdir do |dir|
          write_case(dir, kase, set["base"])
        status, out, = kamal_rs("config", *Array(kase["args"]), dir: dir, env: { "VERSION" => "v1" })
          expected = kase["error"].sub(": ", "): ").gsub("{dir}", File.realpath(dir))
          assert_equal "  \e[31mERROR (#{expected}\e[0m\n", out
          assert_equal 1, status
        end
      end
    end
  end

  def test_at_least_25_distinct_invalid_cases
    assert_operator INVALID["cases"].map { |c| c["error"] }.uniq.size, :>=, 25
  end

  def test_version_from_git_head_with_uncommitted_suffix_only_for_a_context_build
    Dir.mktmpdir do |dir|
      FileUtils.cp_r(File.join(FIXTURES, "configs", "minimal_array", "config"), dir)
      git = ->(*a) { system("git", "-C", dir, *a, out: File::NULL, err: File::NULL) || flunk("git #{a.join(" ")}") }
      git.("init", "-q")
      git.("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x")
      head = `git -C #{dir} rev-parse HEAD`.strip
      File.write(File.join(dir, "dirty"), "x")

      _, out, = kamal_rs("config", dir: dir, env: { "VERSION" => nil })
      assert_equal head, YAML.unsafe_load(out)[:version], "a clone build ignores uncommitted changes"

      File.write(File.join(dir, "config", "deploy.yml"), File.read(File.join(dir, "config", "deploy.yml")).sub("arch: amd64", "arch: amd64\n  context: ."))
      _, out, = kamal_rs("config", dir: dir, env: { "VERSION" => nil })
      assert_match(/\A#{head}_uncommitted_[0-9a-f]{16}\z/, YAML.unsafe_load(out)[:version])

      _, out, = kamal_rs("config", "--version", "v9", dir: dir, env: { "VERSION" => "v8" })
      assert_equal "v9", YAML.unsafe_load(out)[:version], "--version wins over VERSION"
    end
  end

  def test_no_git_repository
    Dir.mktmpdir do |dir|
      FileUtils.cp_r(File.join(FIXTURES, "configs", "minimal_array", "config"), dir)
      status, out, = kamal_rs("config", dir: dir, env: { "VERSION" => nil, "GIT_CEILING_DIRECTORIES" => File.dirname(dir) })
      assert_equal 1, status
      assert_includes out, "ERROR (RuntimeError): Can't use commit hash as version, no git repository found in"
    end
  end

  def test_kamal_destination_is_set_before_erb
    dir = File.join(FIXTURES, "configs", "destination")
    config = Dir.chdir(dir) { KamalRs.config(destination: "staging", version: "x") }
    assert_equal "staging", ENV["KAMAL_DESTINATION"]
    assert_equal [ "jobs", "web" ], config.roles
    assert_equal 2, config.kamal_major
  ensure
    ENV.delete("KAMAL_DESTINATION")
  end

  def test_kamal_1_config_is_recognised
    config = Dir.chdir(File.join(FIXTURES, "configs", "kamal1")) { KamalRs.config(version: "x") }
    assert_equal 1, config.kamal_major
  end

  def test_kamal_1_config_reads_dot_env_before_its_erb
    Dir.mktmpdir do |dir|
      FileUtils.mkdir_p(File.join(dir, "config"))
      File.write(File.join(dir, ".env"), "KAMAL_RS_TEST_WEB=10.0.0.7\nKAMAL_RS_TEST_PW=from-dot-env\n")
      File.write(File.join(dir, ".env.staging"), "KAMAL_RS_TEST_WEB=10.0.0.8\n")
      File.write(File.join(dir, "config", "deploy.yml"), <<~YAML)
        service: app
        image: acme/app
        servers: [ <%= ENV.fetch("KAMAL_RS_TEST_WEB") %> ]
        registry: { username: u, password: [ KAMAL_RS_TEST_PW ] }
        traefik: {}
      YAML
      File.write(File.join(dir, "config", "deploy.staging.yml"), "env: { clear: { A: b } }\n")
      config = Dir.chdir(dir) { KamalRs.config(version: "x") }
      assert_equal 1, config.kamal_major
      assert_equal [ "10.0.0.7" ], config.hosts
      config = Dir.chdir(dir) { KamalRs.config(version: "x", destination: "staging") }
      assert_equal [ "10.0.0.8" ], config.hosts, ".env.<destination> wins over .env"
    end
  ensure
    %w[KAMAL_RS_TEST_WEB KAMAL_RS_TEST_PW].each { |k| ENV.delete(k) }
  end

  def test_a_kamal_2_config_does_not_read_dot_env
    Dir.mktmpdir do |dir|
      FileUtils.mkdir_p(File.join(dir, "config"))
      File.write(File.join(dir, ".env"), "KAMAL_RS_TEST_WEB=10.0.0.7\n")
      File.write(File.join(dir, "config", "deploy.yml"), <<~YAML)
        service: app
        image: acme/app
        servers: [ <%= ENV.fetch("KAMAL_RS_TEST_WEB") %> ]
        registry: { username: u, password: p }
        builder: { arch: amd64 }
      YAML
      assert_raises(KeyError) { Dir.chdir(dir) { KamalRs.config(version: "x") } }
    end
  ensure
    ENV.delete("KAMAL_RS_TEST_WEB")
  end

  def test_secret_key_data_is_redacted
    Dir.mktmpdir do |dir|
      FileUtils.cp_r(File.join(FIXTURES, "configs", "minimal_array", "config"), dir)
      FileUtils.mkdir_p(File.join(dir, ".kamal"))
      File.write(File.join(dir, ".kamal", "secrets"), "SSH_KEY=\"-----BEGIN KEY\nsecret-material\n-----END KEY\"\n")
      path = File.join(dir, "config", "deploy.yml")
      File.write(path, File.read(path) + "  key_data: [ SSH_KEY ]\n")
      status, out, = kamal_rs("config", dir: dir, env: { "VERSION" => "v1" })
      assert_equal 0, status
      assert_includes out, "  :key_data:\n  - \"[REDACTED]\"\n"
      refute_includes out, "secret-material"
    end
  end

  private
    def write_case(dir, kase, base)
      config = deep_merge(Marshal.load(Marshal.dump(base)), kase["set"] || {})
      Array(kase["delete"]).each do |path|
        *parents, last = path.split(".")
        (parents.empty? ? config : config.dig(*parents)).delete(last)
      end
      FileUtils.mkdir_p(File.join(dir, "config"))
      File.write(File.join(dir, "config", "deploy.yml"), YAML.dump(config))
      (kase["files"] || {}).each do |file, content|
        FileUtils.mkdir_p(File.dirname(File.join(dir, file)))
        File.write(File.join(dir, file), content)
      end
    end

    def deep_merge(a, b)
      a.merge(b) { |_, x, y| x.is_a?(Hash) && y.is_a?(Hash) ? deep_merge(x, y) : y }
    end
end
