require "test_helper"
require "open3"
require "timeout"
require "tmpdir"
require_relative "lab_helpers"

# 32 app hosts reached only through a bastion (lab host h0: the others refuse SSH from this machine),
# whose sshd drops connections still authenticating beyond eight (`MaxStartups 8`), at 50 ms RTT.
# `sshkit.max_concurrent_starts: 8` (Kamal's key) keeps the connection starts within what it accepts.
class BastionTest < Minitest::Test
  include LabHelpers

  BASTION = "10.213.0.11".freeze
  COUNT = 32
  HOSTS = (1..COUNT).map { |i| "10.213.0.#{11 + i}" }.freeze
  STARTS = 8

  def self.app
    @app ||= begin
      LabHelpers.fresh_lab(COUNT + 1, rtt: 50)
      Lab.make_bastion(BASTION, max_startups: STARTS)
      dir = Dir.mktmpdir("bastion-app")
      Minitest.after_run { FileUtils.rm_rf(dir) }
      FileUtils.mkdir_p(File.join(dir, "config"))
      dir
    end
  end

  def setup
    require_root
    @app = self.class.app
  end

  def test_01_the_hosts_refuse_direct_ssh_and_the_bastion_limits_starts
    _, status = Open3.capture2e("ssh", "-F", Lab::SSH_CONFIG, "-o", "BatchMode=yes", HOSTS[0], "true")
    refute status.success?, "#{HOSTS[0]} answers SSH directly"
    out, status = Open3.capture2e("ssh", "-F", Lab::SSH_CONFIG, "-o", "BatchMode=yes", "-J", "root@#{BASTION}", HOSTS[0], "true")
    assert status.success?, out
  end

  def test_02_deploy_and_redeploy_through_the_bastion_with_max_concurrent_starts
    write_config(max_concurrent_starts: STARTS)
    status, out = kamal_rs("deploy", "-P", "--version", "v1")
    assert_equal 0, status, out
    HOSTS.each { |ip| assert_equal "app v1\n", http_get(ip) }
    status, out = kamal_rs("redeploy", "-P", "--version", "v2")
    assert_equal 0, status, out
    HOSTS.each { |ip| assert_equal "app v2\n", http_get(ip) }
  end

  # Kamal's default (30) lets 30 start at once: the bastion drops those beyond eight, and the run stops
  # before it changed anything.
  def test_03_without_the_limit_the_bastion_drops_starts_and_nothing_changes
    # v2 serving (deployed through the bastion with the limit, when it is not).
    unless HOSTS.all? { |ip| http_get(ip) == "app v2\n" }
      write_config(max_concurrent_starts: STARTS)
      status, out = kamal_rs("deploy", "-P", "--version", "v2")
      assert_equal 0, status, "setting the lab up: deploy v2:\n#{out}"
    end
    write_config(max_concurrent_starts: nil)
    status, out = kamal_rs("redeploy", "-P", "--version", "v1")
    assert_equal 1, status, out
    assert_match(/could not connect/, out)
    HOSTS.each { |ip| assert_equal "app v2\n", http_get(ip) }
  end

  private
    def write_config(max_concurrent_starts:)
      File.write(File.join(@app, "config", "deploy.yml"),
                 Lab.app_config(HOSTS, proxy: BASTION, max_concurrent_starts: max_concurrent_starts))
    end

    def kamal_rs(*args)
      run_kamal_rs(@app, *args)
    end
end
