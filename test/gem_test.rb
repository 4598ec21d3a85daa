require "test_helper"
require "json"
require "open3"
require_relative "lab_helpers"

# The packaged gems, installed as a user installs them (no network to rubygems.org):
# - the platform gem (`rake gem:native`) installs and runs with no cargo, rustc or C compiler at all;
# - the source gem (`gem build`) compiles its extension with cargo through extconf.rb;
# - extconf.rb names the files from RbConfig (macOS: libkamal_rs.dylib installed as kamal_rs.bundle) and
#   stops with one line without cargo; an extension built for another Ruby fails with a clear error;
# - a Rails app's Gemfile takes the platform gem through Bundler and deploys to the lab with it.
class GemTest < Minitest::Test
  include LabHelpers

  COMPILERS = %w[cargo rustc cc gcc c++ g++ clang make ld].freeze
  RAILS_CONFIG = File.join(FIXTURES, "configs", "rails8_app")

  def self.platform_gem
    @platform_gem ||= begin
      out, status = Open3.capture2e("rake", "gem:native", chdir: ROOT)
      raise "rake gem:native failed:\n#{out}" unless status.success?
      out[/^wrote (.+\.gem)$/, 1]
    end
  end

  def setup
    @tmp = Dir.mktmpdir("gemtest")
  end

  def teardown
    FileUtils.rm_rf(@tmp)
  end

  def test_01_the_platform_gem_installs_and_runs_without_any_compiler
    gem_file = self.class.platform_gem
    assert_match(/kamal_rs-#{Regexp.escape(KamalRs::VERSION)}-x86_64-linux\.gem\z/, gem_file)
    files = gem_files(gem_file)
    assert_includes files, "lib/kamal_rs/#{RUBY_VERSION[/\d+\.\d+/]}/kamal_rs.#{RbConfig::CONFIG["DLEXT"]}"
    refute files.any? { |f| f.start_with?("ext/", "crates/") || f == "lib/kamal_rs/kamal_rs.so" }, files.join("\n")

    env = no_compilers_env(gem_home = File.join(@tmp, "gems"))
    run!("gem", "install", "--local", "--no-document", "--install-dir", gem_home, gem_file, env: env, chdir: @tmp)
    assert_equal KamalRs::VERSION + "\n", run!(File.join(gem_home, "bin", "kamal-rs"), "version", env: env, chdir: @tmp)
    installed = run!(File.join(gem_home, "bin", "kamal-rs"), "config", env: env, chdir: RAILS_CONFIG)
    checkout = run!(RbConfig.ruby, "-I", File.join(ROOT, "lib"), File.join(ROOT, "exe", "kamal-rs"), "config",
                    env: { "VERSION" => "gemtest" }, chdir: RAILS_CONFIG)
    assert_equal checkout, installed
    refute File.exist?(called_log), "a compiler was called: #{File.read(called_log) rescue ""}"
  end

  def test_02_the_source_gem_builds_with_cargo_and_runs
    gem_file = File.join(@tmp, "kamal_rs.gem")
    run!("gem", "build", "kamal_rs.gemspec", "--output", gem_file, chdir: ROOT)
    assert_includes gem_files(gem_file), "ext/kamal_rs/cargo_build.rb"
    gem_home = File.join(@tmp, "gems")
    # The checkout's target directory: the dependencies are not compiled twice (the crates of the
    # installed gem's own tree are, from its sources).
    run!("gem", "install", "--local", "--no-document", "--install-dir", gem_home, gem_file,
         env: { "CARGO_TARGET_DIR" => File.join(ROOT, "target") }, chdir: @tmp)
    env = gem_env(gem_home)
    out = run!(RbConfig.ruby, "-e", 'require "kamal_rs"; puts KamalRs::Native.kamal_version, $LOADED_FEATURES.grep(/kamal_rs\.so/)', env: env, chdir: @tmp)
    assert_match %r{\A2\.12\.0\n#{Regexp.escape(gem_home)}/.*/kamal_rs/kamal_rs\.so\n\z}, out

    app = File.join(@tmp, "app")
    FileUtils.cp_r(File.join(FIXTURES, "app"), app)
    run!("bundle", "install", "--local", env: env, chdir: app)
    expected = File.read(File.join(FIXTURES, "app", "expected_config.yml"))
    assert_equal expected, run!("bundle", "exec", "kamal-rs", "config", env: env, chdir: app)
    assert_equal expected, run!("bundle", "exec", "rake", "kamal_rs:config", env: env, chdir: app)
  end

  def test_03_extconf_on_macos_takes_the_dylib_and_installs_a_bundle
    Dir.chdir(@tmp) do
      macos = 'RbConfig::CONFIG.merge!("host_os" => "darwin23", "DLEXT" => "bundle", "SOEXT" => "dylib")'
      run!(RbConfig.ruby, "-rrbconfig", "-e", "#{macos}; load ARGV[0]", File.join(ROOT, "ext", "kamal_rs", "extconf.rb"), chdir: @tmp)
      makefile = File.read("Makefile")
      assert_includes makefile, %(cp "$(CARGO_TARGET_DIR)/release/libkamal_rs.dylib" kamal_rs.bundle)
      assert_includes makefile, %(RUSTFLAGS="-C link-arg=-Wl,-undefined,dynamic_lookup" $(CARGO) build --release --locked -p kamal_rs)
      refute_match(/\.so\b/, makefile)
      steps = run!("make", "-n", "install", "sitearchdir=/gem/ext", chdir: @tmp)
      assert_includes steps, %(cp kamal_rs.bundle "/gem/ext/kamal_rs/")
    end
    linux = Dir.mktmpdir("linux", @tmp)
    run!(RbConfig.ruby, File.join(ROOT, "ext", "kamal_rs", "extconf.rb"), chdir: linux)
    makefile = File.read(File.join(linux, "Makefile"))
    assert_includes makefile, %(cp "$(CARGO_TARGET_DIR)/release/libkamal_rs.so" kamal_rs.so)
    refute_includes makefile, "dynamic_lookup"
  end

  def test_04_extconf_without_cargo_stops_with_one_line
    out, err, status = Open3.capture3({ "CARGO" => File.join(@tmp, "no-cargo") }, RbConfig.ruby,
                                      File.join(ROOT, "ext", "kamal_rs", "extconf.rb"), chdir: @tmp)
    refute status.success?
    assert_equal "", out
    assert_equal 1, err.lines.size, err
    assert_match(/needs Rust's cargo .*install Rust \(https:\/\/rustup\.rs\), or install the precompiled gem/, err)
    refute File.exist?(File.join(@tmp, "Makefile"))
  end

  def test_05_an_extension_built_for_another_ruby_fails_with_what_to_do
    gem_dir = File.join(@tmp, "gem")
    FileUtils.mkdir_p(gem_dir)
    FileUtils.cp_r(File.join(ROOT, "lib"), File.join(gem_dir, "lib"))
    FileUtils.cp_r(File.join(ROOT, "exe"), File.join(gem_dir, "exe"))
    native = File.join(gem_dir, "lib", "kamal_rs")
    FileUtils.mkdir_p(File.join(native, "3.3"))
    FileUtils.mv(File.join(native, "kamal_rs.so"), File.join(native, "3.3", "kamal_rs.so"))
    File.write(File.join(native, "extension.json"), JSON.generate("platform" => "arm64-darwin", "rubies" => [ "3.3" ]))
    minor = RUBY_VERSION[/\d+\.\d+/]
    expected = "kamal_rs was built for Ruby 3.3 on arm64-darwin; this is Ruby #{minor} on #{Gem::Platform.local}: " \
               "reinstall with `gem install kamal_rs --platform ruby` to build from source"

    out, err, status = Open3.capture3({ "RUBYLIB" => nil }, RbConfig.ruby, "-I", File.join(gem_dir, "lib"),
                                      File.join(gem_dir, "exe", "kamal-rs"), "version")
    assert_equal [ 1, "", "  ERROR (KamalRs::ExtensionLoadError): #{expected}\n" ], [ status.exitstatus, out, err ]
    script = 'begin; require "kamal_rs"; rescue LoadError => e; puts e.class, e.message; end'
    out = run!(RbConfig.ruby, "-I", File.join(gem_dir, "lib"), "-e", script, env: { "RUBYLIB" => nil }, chdir: @tmp)
    assert_equal "KamalRs::ExtensionLoadError\n#{expected}\n", out

    # No extension at all, in a checkout: what to run.
    FileUtils.rm_rf(File.join(native, "3.3"))
    FileUtils.rm(File.join(native, "extension.json"))
    out = run!(RbConfig.ruby, "-I", File.join(gem_dir, "lib"), "-e", script, env: { "RUBYLIB" => nil }, chdir: @tmp)
    assert_match(/\AKamalRs::ExtensionLoadError\nkamal_rs: the native extension is not built\. In a checkout run `rake compile`/, out)
  end

  def test_06_a_rails_apps_gemfile_takes_the_platform_gem_and_deploys
    require_root
    LabHelpers.fresh_lab(2)
    app = File.join(@tmp, "app")
    FileUtils.cp_r(File.join(FIXTURES, "app"), app)
    # A local gem server's directory (`gem generate_index`), as a team's mirror would be.
    repo = File.join(@tmp, "repo")
    FileUtils.mkdir_p(File.join(repo, "gems"))
    FileUtils.cp(self.class.platform_gem, File.join(repo, "gems"))
    env = no_compilers_env(File.join(@tmp, "gems"))
    run!("gem", "generate_index", "--directory", repo, env: env, chdir: @tmp)
    File.write(File.join(app, "Gemfile"), "source \"file://#{repo}\"\n\ngem \"kamal_rs\"\ngem \"rake\"\n")
    run!("bundle", "install", env: env, chdir: app)
    assert_match(/^    kamal_rs \(#{Regexp.escape(KamalRs::VERSION)}-x86_64-linux\)$/, File.read(File.join(app, "Gemfile.lock")))
    out = run!("bundle", "exec", "kamal-rs", "deploy", "-P", "--version", "v1", env: env, chdir: app)
    assert_match(/^  Finished all in /, out)
    %w[10.213.0.11 10.213.0.12].each { |ip| assert_equal "app v1\n", http_get(ip) }
    refute File.exist?(called_log), "a compiler was called: #{File.read(called_log) rescue ""}"
  end

  private
    def run!(*cmd, chdir:, env: {})
      out, err, status = Open3.capture3(env, *cmd, chdir: chdir)
      assert status.success?, "#{cmd.join(" ")} failed:\n#{out}\n#{err}"
      out
    end

    def gem_files(gem_file)
      data = Open3.capture2("tar", "-xOf", gem_file, "data.tar.gz").first
      Open3.capture2("tar", "-tz", stdin_data: data, binmode: true).first.lines(chomp: true)
    end

    def gem_env(gem_home)
      { "GEM_HOME" => gem_home, "GEM_PATH" => [ gem_home, *Gem.path ].join(File::PATH_SEPARATOR),
        "RUBYLIB" => nil, "RUBYOPT" => nil, "BUNDLE_GEMFILE" => nil, "VERSION" => "gemtest" }
    end

    # gem_env, with cargo, rustc and every C compiler on PATH failing loudly (and writing down the call).
    def no_compilers_env(gem_home)
      stubs = File.join(@tmp, "stubs")
      FileUtils.mkdir_p(stubs)
      COMPILERS.each do |tool|
        File.write(File.join(stubs, tool), "#!/bin/sh\necho \"#{tool} $*\" >> '#{called_log}'\nexit 1\n")
        File.chmod(0o755, File.join(stubs, tool))
      end
      gem_env(gem_home).merge("PATH" => [ stubs, ENV["PATH"] ].join(File::PATH_SEPARATOR),
                              "CARGO" => File.join(stubs, "cargo"), "CC" => File.join(stubs, "cc"))
    end

    def called_log
      File.join(@tmp, "compilers-called.log")
    end
end
