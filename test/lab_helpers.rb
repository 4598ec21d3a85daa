require "open3"
require "shellwords"
require "socket"
require "timeout"
require_relative "lab/lab"

# What the lab-backed tests (deploy, build, Kamal 1.x) share: looking at a host over SSH, as a user would.
module LabHelpers
  # A fresh lab for one test class (each class starts from clean hosts), taken down after the run.
  def self.fresh_lab(count, **options)
    Lab.up(count, **options)
    @down_registered ||= Minitest.after_run { Lab.down(quiet: true) } || true
  end

  # An app directory (removed after the run) whose config/deploy.yml is `config`: Lab.app_config's by
  # default, the lab's app on `hosts`.
  def self.app_dir(prefix, hosts, config: Lab.app_config(hosts))
    dir = Dir.mktmpdir(prefix)
    Minitest.after_run { FileUtils.rm_rf(dir) }
    FileUtils.mkdir_p(File.join(dir, "config"))
    File.write(File.join(dir, "config", "deploy.yml"), config)
    dir
  end

  private
    # A lab test fails at once when it cannot run (a skipped test did not run): the lab needs root.
    def require_root
      flunk "the lab tests need root (they make network namespaces and run dockerd): run them as root, " \
            "e.g. sudo script/test" unless Process.uid.zero?
    end

    # Ruby Kamal 2.12, which the side-by-side tests run beside kamal_rs.
    def require_ruby_kamal
      flunk "needs Ruby Kamal 2.12 (script/setup installs it as kamal-2.12, or set KAMAL_RS_TEST_KAMAL)" if ruby_kamal.empty?
    end

    # The lab as a test expects to find it, whatever ran before it (tests run in any order, or alone):
    # each version of `history` deployed on every one of `hosts` at some time (its containers still
    # there) and the last one serving on the `web` hosts. Deploys what is missing, oldest first, with
    # the block (given a version); nothing when the lab is already so.
    def given_serving(*history, web:, hosts: web)
      names = ->(ip) { docker(ip, "ps -a --format '{{.Names}}'").split }
      deployed = ->(v) { hosts.all? { |ip| names.call(ip).any? { |n| n.end_with?("-#{v}") } } }
      serving = history.last
      return if history.all?(&deployed) && web.all? { |ip| http_get(ip) == "app #{serving}\n" }

      history.each { |v| yield v if v == serving || !deployed.call(v) }
      web.each { |ip| assert_equal "app #{serving}\n", http_get(ip), "#{ip} after setting the lab up to serve #{serving}" }
    end

    # A redeploy needs a deploy before it (kamal-proxy, its network): made, with the block, on a lab
    # where none ran yet.
    def given_deployed(web:)
      yield unless web.all? { |ip| !docker(ip, "ps -q --filter name=^kamal-proxy$").strip.empty? }
    end

    # No container, env file or audit line of the app `sd` (service[-destination]) on `hosts`: a test
    # that checks what a first deploy leaves starts from this.
    def wipe_app(hosts, service:, sd:)
      hosts.each do |ip|
        remote(ip, "docker ps -aq --filter label=service=#{service} | xargs -r docker rm -f; " \
                   "rm -rf .kamal/apps/#{sd} .kamal/#{sd}-audit.log .kamal/lock-#{sd}")
      end
    end

    # `kamal-rs ARGS` from this checkout in `dir`: [exit status, output].
    def run_kamal_rs(dir, *args, env: {}, timeout: 180)
      full_env = { "RUBYLIB" => File.join(ROOT, "lib") }.merge(env)
      out, status = Timeout.timeout(timeout) do
        Open3.capture2e(full_env, RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), *args, chdir: dir)
      end
      [ status.exitstatus, out ]
    end

    def remote(ip, command)
      out, status = Open3.capture2e("ssh", "-F", Lab::SSH_CONFIG, "-o", "BatchMode=yes", ip, command)
      [ out, status.exitstatus ]
    end

    def docker(ip, args)
      remote(ip, "docker #{args}").first
    end

    def http_get(ip)
      out, = Open3.capture2("curl", "-s", "--max-time", "5", "http://#{ip}/")
      out
    end

    # A relay on 127.0.0.1:5757 to the lab registry, standing for a `localhost:5757` registry that app
    # hosts reach through the SSH reverse forward; `delay`: seconds before each connection is relayed.
    def with_registry_relay(delay: 0)
      relay = TCPServer.new("127.0.0.1", 5757)
      relaying = Thread.new do
        loop do
          Thread.new(relay.accept) do |c|
            sleep delay
            up = TCPSocket.new(Lab::GATEWAY, 5000)
            [ Thread.new { IO.copy_stream(c, up) rescue nil; up.close_write rescue nil },
              Thread.new { IO.copy_stream(up, c) rescue nil; c.close_write rescue nil } ].each(&:join)
            [ c, up ].each { |s| s.close rescue nil }
          end
        end
      end
      yield
    ensure
      relaying&.kill
      relay&.close
    end

    # The command that runs Ruby Kamal 2.12 beside kamal_rs: KAMAL_RS_TEST_KAMAL, else the
    # `kamal-2.12` that script/install-ruby-kamal puts on PATH, else none.
    def ruby_kamal
      RubyKamal.command
    end

    # A real OTLP/HTTP log receiver on this machine (test/lab/tools' otlp-receiver: OpenTelemetry's own
    # message types decode each request): yields its URL and the directory where each request's body
    # lands (`<n>.json`, or `<n>.invalid` when it is not valid OTLP). `delay`: seconds before it answers.
    def with_otlp_receiver(delay: nil)
      port = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
      dir = Dir.mktmpdir("otlp")
      command = [ File.join(Lab::TOOLS_BIN, "otlp-receiver"), "127.0.0.1:#{port}", dir ]
      command += [ "--delay", delay.to_s ] if delay
      pid = spawn(*command, out: File::NULL, err: File::NULL)
      listening = -> { TCPSocket.new("127.0.0.1", port).close || true rescue false }
      Lab.wait_until(what: "otlp-receiver listening on #{port}", timeout: 10) { listening.call }
      yield "http://127.0.0.1:#{port}", dir
    ensure
      (Process.kill("TERM", pid) rescue nil) && Process.wait(pid) if pid
      FileUtils.rm_rf(dir) if dir
    end

    def assert_one_connection_per_host(hosts)
      hosts.each do |ip|
        clients = Lab.transcript(ip).map { |l| l[:client] }.uniq
        assert_equal 1, clients.size, "#{ip}: #{clients.size} SSH connections in one run"
      end
    end
end
