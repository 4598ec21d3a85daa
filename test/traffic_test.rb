require "test_helper"
require "tmpdir"
require_relative "lab_helpers"
require_relative "lab/traffic"

# Zero downtime, measured through the real kamal-proxy v0.9.2 on three lab web hosts: lab-traffic sends
# 100 requests a second to each host's kamal-proxy (a new connection each, unanswered in 10 s counts as
# failed) through a kamal-rs run, and not one may fail (non-2xx, reset or timeout). Each host must switch
# version during the run, so the traffic really crossed the switch. The health check path is served from a host
# directory bind-mounted into the app, so one host's new container can be made never healthy.
class TrafficTest < Minitest::Test
  include LabHelpers

  WEB = %w[10.213.0.11 10.213.0.12 10.213.0.13].freeze

  def self.app
    @app ||= begin
      LabHelpers.fresh_lab(3)
      dir = Dir.mktmpdir("traffic-app")
      Minitest.after_run { FileUtils.rm_rf(dir) }
      FileUtils.mkdir_p([ File.join(dir, "config"), File.join(dir, ".kamal") ])
      File.write(File.join(dir, ".kamal", "secrets"), "REGISTRY_PASSWORD=lab\n")
      File.write(File.join(dir, "config", "deploy.yml"), <<~YAML)
        service: app
        image: app
        servers:
          web: [ #{WEB.join(", ")} ]
        proxy:
          healthcheck: { path: /health/up, interval: 1, timeout: 2 }
        volumes: [ "/root/health:/www/health" ]
        registry: { server: "#{Lab::REGISTRY}", username: lab, password: [ REGISTRY_PASSWORD ] }
        builder: { arch: amd64 }
        deploy_timeout: 6
        ssh: { keys: [ #{Lab::KEY} ], config: #{Lab::SSH_CONFIG} }
      YAML
      system("git init -q && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m app", chdir: dir, exception: true)
      dir
    end
  end

  def setup
    flunk "the lab needs root: run the tests as root" unless Process.uid.zero?
    @app = self.class.app
    unless Traffic.real_proxy?
      flunk "no real kamal-proxy v0.9.2 in the lab (script/install-kamal-proxy builds it from ../shared/kamal-proxy): " \
            "the stand-in relays TCP and cannot show a lost request"
    end
    WEB.each do |ip|
      remote(ip, "mkdir -p /root/health && echo ok > /root/health/up && rm -rf .kamal/lock-app .kamal/apps .kamal/app-audit.log; " \
                 "docker ps -aq --filter label=service=app | xargs -r docker rm -f >/dev/null")
    end
    status, out = run_kamal_rs(@app, "deploy", "-P", "--version", "v1")
    assert_equal 0, status, out
  end

  def test_no_request_fails_through_a_redeploy_and_a_rollback
    result = with_traffic("redeploy -P --version v2", expect: 0)
    assert_switched result, "v1" => "v2"
    result = with_traffic("rollback v1", expect: 0)
    assert_switched result, "v2" => "v1"
  end

  def test_no_request_fails_when_a_host_never_gets_healthy_and_the_run_reverts
    remote(WEB.last, "rm -f /root/health/up")
    result = with_traffic("redeploy -P --version v2 --revert-on-failure", expect: 1)
    # Every host serves v1 at the end; the two that switched went to v2 and back.
    assert_equal [ "v1" ] * WEB.size, result.switches.map(&:to), result.switches.inspect
    served = result.requests.group_by(&:host).transform_values { |r| r.select(&:ok?).map(&:version).uniq.sort }
    assert_equal({ WEB[0] => %w[v1 v2], WEB[1] => %w[v1 v2], WEB[2] => %w[v1] }, served)
  end

  private
    # Runs `kamal-rs ARGS` with traffic on every web host; fails naming the lost requests, if any.
    def with_traffic(args, expect:)
      (status, out), result = Traffic.during(WEB, rate: 100) { run_kamal_rs(@app, *args.split) }
      assert_equal expect, status, out
      assert_operator result.requests.size, :>=, WEB.size * 100 * result.seconds.floor, "lab-traffic kept its rate"
      assert_empty result.failure_summary, "requests lost during `kamal-rs #{args}`"
      result
    end

    def assert_switched(result, change)
      from, to = change.first
      result.switches.each do |s|
        assert_equal [ from, to ], [ s.from, s.to ], "#{s.host} answered #{s.from} then #{s.to}"
        assert s.at, "#{s.host} switched during the run"
      end
    end
end
