require "test_helper"
require "json"
require "open3"
require "timeout"
require "tmpdir"
require_relative "lab_helpers"
require_relative "lab/sim"

# The simulated fleet (test/lab/sim.rb) at 32 hosts: kamal_rs and Ruby Kamal 2.12 each deploy v1,
# redeploy v2 and roll back to v1 on a fresh fleet, and every host's stand-in must end in the same
# state: containers (name, status, image, labels, env, cmd, options), images and their tags, networks,
# kamal-proxy's routes (by container name) and the calls it got, `.kamal` files and the audit log.
# The stand-in is what makes 32 hosts (and the 1,000 of bench/fleet.rb) cheap; the real-docker lab
# tests stay what says a deploy works.
class SimTest < Minitest::Test
  include LabHelpers

  COUNT = 32
  STEPS = [ %w[deploy -P --version v1], %w[redeploy -P --version v2], %w[rollback v1] ].freeze
  # Quicker than the benchmark's: the test compares end states, not times.
  LATENCY = { "pull" => 0.2, "run" => 0.1, "stop" => 0.1, "health" => 0.2 }.freeze

  def setup
    require_root
    require_ruby_kamal
  end

  def teardown
    SimLab.down(quiet: true) if Process.uid.zero?
  end

  def test_kamal_rs_and_ruby_kamal_leave_32_simulated_hosts_in_the_same_state
    theirs = run_steps(:kamal)
    ours = run_steps(:kamal_rs)
    STEPS.each_with_index do |step, i|
      ours[i].each do |host, mine|
        where = "#{host}, after #{step.first}"
        kamal = theirs[i][host]
        assert_equal kamal[:containers].map { |c| c[:name] }, mine[:containers].map { |c| c[:name] }, "#{where}: containers"
        kamal[:containers].zip(mine[:containers]).each do |t, m|
          t.each_key { |k| assert t[k] == m[k], "#{where}: #{t[:name]} #{k}:\n  Kamal:    #{t[k].inspect}\n  kamal_rs: #{m[k].inspect}" }
        end
        (kamal.keys - [ :containers ]).each { |k| assert_equal kamal[k], mine[k], "#{where}: #{k}" }
      end
    end
    final = ours.last.values
    assert final.all? { |s| s[:routes] == { "app-web" => "app-web-v1" } }, "every host routes to v1 after the rollback"
    latest = ->(s) { s[:images].find { |i| i.start_with?("registry.sim:5000/app:latest ") }&.split&.last }
    v1 = ->(s) { s[:images].find { |i| i.start_with?("registry.sim:5000/app:v1 ") }&.split&.last }
    assert final.all? { |s| latest.(s) && latest.(s) == v1.(s) }, "latest is v1 everywhere"
  end

  # The fleet's faults, one host each, within --max-fail 4: a host unreachable from the start, one whose
  # pull fails, one whose new container never gets healthy, one whose connection drops as its boot
  # starts. Each is left behind with its reason, the others run v2, the run exits 3.
  def test_each_simulated_fault_is_left_behind_within_the_budget
    SimLab.up(8, latency: LATENCY)
    hosts = SimLab.hosts
    Dir.mktmpdir("sim-faults") do |app|
      FileUtils.mkdir_p(File.join(app, "config"))
      File.write(File.join(app, "config", "deploy.yml"), SimLab.app_config(hosts) + "deploy_timeout: 2\n")
      status, out = run_kamal_rs(app, "deploy", "-P", "--version", "v1")
      assert_equal 0, status, out
      faults = SimLab::FAULTS.zip(hosts.drop(2)).to_h
      faults.each { |kind, ip| SimLab.fail(ip, kind) }
      status, out = run_kamal_rs(app, "redeploy", "-P", "--version", "v2", "--max-fail", "4")
      assert_equal 3, status, out
      reasons = {
        "unreachable" => /could not connect: connection refused/, "pull" => /docker exit status: 1/,
        "unhealthy" => /docker exit status: 1/, "lost" => /connection lost/
      }
      faults.each { |kind, ip| assert_match(/^  #{Regexp.escape(ip)}: #{reasons[kind]}/, out, kind) }
      faults.each_value { |ip| SimLab.heal(ip) }
      routes = hosts.to_h { |ip| [ ip, SimLab.state_of(ip).dig("proxy", "routes", "app-web") ] }
      (hosts - faults.values).each { |ip| assert_match(/:80\z/, routes[ip].to_s, ip) }
      running = hosts.to_h { |ip| [ ip, SimLab.state_of(ip)["containers"].select { |c| c["status"] == "running" }.map { |c| c["name"] } ] }
      (hosts - faults.values).each { |ip| assert_includes running[ip], "app-web-v2", ip }
      (faults.values_at("unreachable", "pull", "unhealthy")).each { |ip| assert_includes running[ip], "app-web-v1", ip }
    end
  end

  private
    # A fresh fleet, the three steps, each host's stand-in state after each.
    def run_steps(tool)
      SimLab.up(COUNT, latency: LATENCY)
      hosts = SimLab.hosts
      Dir.mktmpdir("sim") do |app|
        FileUtils.mkdir_p(File.join(app, "config"))
        File.write(File.join(app, "config", "deploy.yml"), SimLab.app_config(hosts))
        system("git init -q && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m app", chdir: app, exception: true)
        STEPS.map do |step|
          run!(tool, *step, dir: app)
          hosts.to_h { |h| [ h, snapshot(h) ] }
        end
      end
    ensure
      SimLab.down(quiet: true)
    end

    def run!(tool, *args, dir:)
      command = tool == :kamal ? ruby_kamal : [ RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs") ]
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      out, status = Timeout.timeout(600) { Open3.capture2e({ "RUBYLIB" => File.join(ROOT, "lib") }, *command, *args, "-q", chdir: dir) }
      warn format("%s %s: %.1f s", tool, args.first, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) if ENV["SIM_TEST_TIMES"]
      assert status.success?, "#{tool} #{args.join(" ")}:\n#{out}"
    end

    def snapshot(host)
      state = SimLab.state_of(host)
      home = File.join(SimLab.host_dir(SimLab.name_of(host)), "home")
      containers = state["containers"].map { |c| container(c) }.sort_by { |c| c[:name] }
      names = state["containers"].to_h { |c| [ c["id"][0, 12], normalize(c["name"]) ] }
      {
        containers: containers,
        images: state["images"].flat_map { |i| i["tags"].map { |t| "#{t} #{i["id"]}" } }.sort,
        networks: state["networks"].sort,
        routes: state.dig("proxy", "routes").transform_values { |t| names.fetch(t.split(":").first, t) },
        proxy: state.dig("proxy", "commands").map { |words| words.map { |w| w.sub(/\A--target=(\h{12})/) { "--target=#{names[$1]}" } } },
        files: Dir.glob("**/*", File::FNM_DOTMATCH, base: File.join(home, ".kamal")).sort
                  .select { |f| File.file?(File.join(home, ".kamal", f)) }
                  .map { |f| format("%o %s", File.stat(File.join(home, ".kamal", f)).mode & 0o777, f) },
        audit: File.readlines(File.join(home, ".kamal", "app-audit.log"), chomp: true)
                   .map { |l| normalize(l.sub(/\A\[[^\]]+\] \[[^\]]+\]/, "[TIME] [PERFORMER]")) }
      }
    end

    def container(c)
      {
        name: normalize(c["name"]), status: c["status"], image: c["image"], labels: c["labels"], cmd: c["cmd"],
        # A hostname is random where Kamal makes one (`<host>-<hex>`) and where docker does.
        env: c["env"].sort, hostname: c["hostname"].sub(/-\h{12}\z/, "").sub(/\A\h{12}\z/, ""), restart: c["restart"], networks: c["networks"],
        binds: c["binds"].sort, log_opts: c["log_opts"], publish: c["publish"]
      }
    end

    def normalize(text)
      text.gsub(/_replaced_\h{16}/, "_replaced_X")
    end
end
