require "test_helper"
require "open3"

# The packaged gem: `gem build` + `gem install --local` compile the extension with cargo (no network to
# rubygems.org), the installed gem loads, and an app with a Gemfile uses it through Bundler offline.
class GemTest < Minitest::Test
  def test_gem_build_install_and_bundle_exec_offline
    Dir.mktmpdir do |tmp|
      gem_file = File.join(tmp, "kamal_rs.gem")
      run!("gem", "build", "kamal_rs.gemspec", "--output", gem_file, chdir: ROOT)
      gem_home = File.join(tmp, "gems")
      run!("gem", "install", "--local", "--no-document", "--install-dir", gem_home, gem_file, chdir: tmp)

      system_path = Gem.path.join(File::PATH_SEPARATOR)
      env = { "GEM_HOME" => gem_home, "GEM_PATH" => [ gem_home, system_path ].join(File::PATH_SEPARATOR),
              "RUBYLIB" => nil, "RUBYOPT" => nil, "BUNDLE_GEMFILE" => nil, "VERSION" => "gemtest" }
      out = run!(RbConfig.ruby, "-e", 'require "kamal_rs"; puts KamalRs::Native.kamal_version', env: env, chdir: tmp)
      assert_equal "2.12.0\n", out

      app = File.join(tmp, "app")
      FileUtils.cp_r(File.join(FIXTURES, "app"), app)
      run!("bundle", "install", "--local", env: env, chdir: app)
      expected = File.read(File.join(FIXTURES, "app", "expected_config.yml"))
      assert_equal expected, run!("bundle", "exec", "kamal-rs", "config", env: env, chdir: app)
      assert_equal expected, run!("bundle", "exec", "rake", "kamal_rs:config", env: env, chdir: app)
    end
  end

  private
    def run!(*cmd, chdir:, env: {})
      out, err, status = Open3.capture3(env, *cmd, chdir: chdir)
      assert status.success?, "#{cmd.join(" ")} failed:\n#{out}\n#{err}"
      out
    end
end
