require "test_helper"

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

  def test_help_lists_commands_and_kamal_option_letters
    _, out, = kamal_rs("help", dir: ROOT)
    assert_includes out, "kamal-rs deploy"
    assert_includes out, "-h, [--hosts=HOSTS]"
    assert_includes out, "-H, [--skip-hooks]"
    assert_includes out, "    [--version=VERSION]"
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
end
