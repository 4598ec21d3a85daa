require "test_helper"
require "json"
require "open3"
require "timeout"
require "tmpdir"
require_relative "lab_helpers"

# kamal_rs and Ruby Kamal 2.12 side by side, on the same three lab hosts: for each config in
# test/fixtures/side_by_side (between them: volumes, docker options, labels, logging, env tags, roles
# with a cmd, proxy host/hosts/app_port/healthcheck/response_timeout/buffering/forward_headers,
# asset_path, retain_containers, boot.limit, a destination), each tool runs deploy v1, redeploy v2 and
# rollback v1 on freshly reset hosts, and after each step every host's state must be the same:
# containers (name, state, image, cmd, env, labels, hostname, volumes, options, logging, restart),
# images and their tags, volumes, networks, `.kamal` files and their modes, env files, the audit log,
# and what kamal-proxy did (the real v0.9.2's state file: every service, its targets and options; and the
# deploys it logged, in order). Then each host's `-v` command sequence: every command Ruby Kamal runs
# that kamal_rs does not (or the other way round) must be one of the differences the README's "Where
# kamal_rs differs from Kamal, on purpose" names (COMMANDS_ONLY_KAMAL, COMMANDS_ONLY_KAMAL_RS).
class SideBySideTest < Minitest::Test
  include LabHelpers

  HOSTS = %w[10.213.0.11 10.213.0.12 10.213.0.13].freeze
  CONFIGS = Dir[File.join(FIXTURES, "side_by_side", "*")].sort.freeze
  STEPS = [ %w[deploy -P --version v1], %w[redeploy -P --version v2], %w[rollback v1] ].freeze

  # Commands Ruby Kamal runs that kamal_rs does not, each for a reason the README gives ("Same effect,
  # less work"): matched after `normalize`.
  COMMANDS_ONLY_KAMAL = [
    # The pull re-resolves the tag anyway.
    /\Adocker image rm --force \S+\z/,
    # Kamal checks whether a registry mirror needs seeding; kamal_rs only for Docker Hub images.
    /\Adocker info --format '\{\{index \.RegistryConfig\.Mirrors 0\}\}'\z/,
    # The run directory is made by the commands that write there (the lock's, the audit lines').
    /\Amkdir -p \.kamal\z/,
    # kamal-proxy's state and version in one `docker inspect` (kamal_rs's own line, below).
    /\Adocker inspect kamal-proxy --format '\{\{\.Config\.Image\}\}' \| awk -F: '\{print \$NF\}'\z/,
    # The role's containers in one `docker ps -a` (kamal_rs's own line, below).
    /\Adocker ps --filter label=service=\S+ (--filter label=destination=\S* )?--filter label=role=\S+ --format "\{\{\.Names\}\}" \| while read line/,
    /\Ash -c 'docker ps --latest --format/,
    # The new container's ID from `docker run`'s output; its state from the script.
    /\Adocker container ls --all --filter 'name=\^\S+\$' --quiet\z/,
    # Old and stale containers stopped by name (kamal_rs's own `docker stop "NAME"`).
    /\Adocker container ls --all --filter 'name=\^\S+\$' --quiet \| xargs docker stop/
  ].freeze

  # Commands kamal_rs runs that Ruby Kamal does not.
  COMMANDS_ONLY_KAMAL_RS = [
    /\Adocker inspect kamal-proxy --format '\{\{\.State\.Running\}\}/,
    /\Adocker ps -a --filter label=service=\S+ (--filter label=destination=\S* )?--filter label=role=\S+ --format '\{\{\.Names\}\} \{\{\.State\}\}'\z/,
    /\Adocker stop (-t \d+ )?"\S+"\z/
  ].freeze

  def self.lab
    @lab ||= LabHelpers.fresh_lab(3)
  end

  def setup
    require_root
    require_ruby_kamal
    self.class.lab
  end

  # A fixture's `steps` file (one command line each, aliases of its config say) stands for STEPS.
  def self.steps(fixture)
    file = File.join(fixture, "steps")
    File.exist?(file) ? File.readlines(file, chomp: true).map(&:split) : STEPS
  end

  CONFIGS.each do |fixture|
    name = File.basename(fixture)
    define_method("test_#{name}") do
      kamal = run_steps(:kamal, fixture)
      ours = run_steps(:kamal_rs, fixture)
      self.class.steps(fixture).each_with_index do |step, i|
        HOSTS.each do |host|
          theirs, mine = kamal[:states][i][host], ours[:states][i][host]
          where = "#{name}, #{host}, after #{step.first}"
          assert_equal theirs[:containers].map { |c| c[:name] }, mine[:containers].map { |c| c[:name] }, "#{where}: containers"
          theirs[:containers].zip(mine[:containers]).each do |t, m|
            t.each_key { |k| assert t[k] == m[k], "#{where}: #{t[:name]} #{k}:\n  Kamal:    #{t[k].inspect}\n  kamal_rs: #{m[k].inspect}" }
          end
          if theirs[:containers].any? { |c| c[:name] == "/kamal-proxy" && c[:status] == "running" }
            refute_empty theirs[:proxy], "#{where}: what kamal-proxy did (its state file and log) was read"
          end
          (theirs.keys - [ :containers ]).each { |k| assert_equal theirs[k], mine[k], "#{where}: #{k}" unless theirs[k] == mine[k] }
        end
      end
      self.class.steps(fixture).each_with_index do |step, i|
        HOSTS.each do |host|
          theirs, mine = [ kamal, ours ].map { |r| commands(r[:logs][i], host) }
          if ENV["SIDE_BY_SIDE_SHOW"]
            puts "== #{name} #{host} #{step.first}", "  only Kamal:", *(theirs - mine).map { |c| "    #{c[0, 160]}" },
                 "  only kamal_rs:", *(mine - theirs).map { |c| "    #{c[0, 160]}" }
          end
          only_kamal = (theirs - mine).reject { |c| COMMANDS_ONLY_KAMAL.any? { |re| re.match?(c) } }
          only_ours = (mine - theirs).reject { |c| COMMANDS_ONLY_KAMAL_RS.any? { |re| re.match?(c) } }
          assert_empty only_kamal, "#{name}, #{host}, #{step.first}: commands Kamal runs and kamal_rs does not"
          assert_empty only_ours, "#{name}, #{host}, #{step.first}: commands kamal_rs runs and Kamal does not"
        end
      end
    end
  end

  private
    # Each step with `-v` on freshly reset hosts: the state after each, and each step's output.
    def run_steps(tool, fixture)
      reset_hosts
      Dir.mktmpdir("side-by-side") do |app|
        FileUtils.cp_r(File.join(fixture, "."), app)
        # Kamal names the performer from git; both tools run in the same repository.
        system("git init -q && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m app", chdir: app, exception: true)
        args = File.exist?(File.join(app, "args")) ? File.read(File.join(app, "args")).split : []
        logs, states = [], []
        self.class.steps(fixture).each do |step|
          logs << run!(tool, *step, *args, "-v", dir: app)
          states << HOSTS.to_h { |h| [ h, snapshot(h) ] }
        end
        { logs: logs, states: states }
      end
    end

    def run!(tool, *args, dir:)
      command = tool == :kamal ? ruby_kamal : [ RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs") ]
      env = { "RUBYLIB" => File.join(ROOT, "lib") }
      # stdout apart from stderr: Kamal's buffered stdout reaches a shared pipe in blocks, and a warning
      # written between two of them can split a `Running` line (seen once in a full run). The commands
      # are compared as sets, so each stream's own order is enough.
      stdout, stderr, status = Timeout.timeout(300) { Open3.capture3(env, *command, *args, chdir: dir) }
      out = stdout + stderr
      assert status.success?, "#{tool} #{args.join(" ")}:\n#{out}"
      out
    end

    # Every container, image, volume, network, file and line a deploy leaves, removed.
    def reset_hosts
      HOSTS.each do |h|
        remote(h, <<~SH)
          ids=$(docker ps -aq); [ -z "$ids" ] || docker rm -f $ids >/dev/null
          docker volume ls -q | xargs -r docker volume rm >/dev/null
          docker network rm kamal >/dev/null 2>&1
          docker image ls -q | sort -u | xargs -r docker image rm -f >/dev/null 2>&1
          rm -rf ~/.kamal ~/.docker/config.json /srv/app-data
          true
        SH
      end
    end

    SNAPSHOT = <<~SH.freeze
      echo '##containers'; ids=$(docker ps -aq); if [ -n "$ids" ]; then docker inspect $ids; else echo '[]'; fi
      echo '##images'; docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}' | sort
      echo '##volumes'; docker volume ls --format '{{.Name}}' | sort
      echo '##networks'; docker network ls --format '{{.Name}}' | sort
      echo '##files'; find .kamal -type f -printf '%m %p\\n' 2>/dev/null | sort
      echo '##env'; for f in $(find .kamal -name '*.env' 2>/dev/null | sort); do echo "== $f"; cat "$f"; done
      echo '##audit'; cat .kamal/*audit.log 2>/dev/null
      echo '##proxy'; docker exec kamal-proxy cat /home/kamal-proxy/.config/kamal-proxy/kamal-proxy.state 2>/dev/null; echo
      docker logs kamal-proxy 2>&1 | grep -E '"msg":"(Deploying|Deployed|Rolling out|Stopped|Resumed)"'
      docker exec kamal-proxy cat /home/kamal-proxy/.config/kamal-proxy/commands.log 2>/dev/null
      true
    SH

    def snapshot(host)
      out, = remote(host, SNAPSHOT)
      sections = out.split(/^##(\w+)\n/).drop(1).each_slice(2).to_h { |k, v| [ k, v.to_s ] }
      {
        containers: JSON.parse(sections["containers"]).map { |c| container(c) }.sort_by { |c| c[:name] },
        images: sections["images"].lines.map(&:chomp),
        volumes: sections["volumes"].lines.map(&:chomp),
        networks: sections["networks"].lines.map(&:chomp),
        files: sections["files"].lines.map { |l| normalize(l.chomp) },
        env: sections["env"],
        audit: sections["audit"].lines.map { |l| normalize(l.chomp.sub(/\A\[[^\]]+\] \[[^\]]+\]/, "[TIME] [PERFORMER]")) },
        proxy: proxy_state(sections["proxy"])
      }
    end

    # What kamal-proxy did: the real one's state file (every service with its targets and options) and
    # the deploys it logged, in order, without their times; the stand-in's commands.log where it runs.
    def proxy_state(text)
      text.lines.map(&:chomp).reject(&:empty?).flat_map do |line|
        line = line.sub(/\A\{"time":"[^"]*",/, "{") if line.start_with?('{"time"')
        line = JSON.pretty_generate(JSON.parse(line)) if line.start_with?("[")
        normalize(line).lines.map(&:chomp)
      end
    end

    def container(c)
      config, host = c["Config"], c["HostConfig"]
      {
        name: normalize(c["Name"]), status: c["State"]["Status"], image: config["Image"], cmd: config["Cmd"],
        env: config["Env"].sort, labels: config["Labels"], healthcheck: config["Healthcheck"],
        # A container's hostname is random where Kamal makes one (`<host>-<hex>`) and where docker does.
        hostname: config["Hostname"].sub(/-\h{12}\z/, "").sub(/\A\h{12}\z/, ""),
        # The docker CLI collects `--volume`s in a Go map: Binds come in any order.
        binds: host["Binds"]&.sort,
        host_config: host.slice("RestartPolicy", "LogConfig", "NetworkMode", "Memory", "ExtraHosts",
                                "PortBindings", "Privileged", "CapAdd", "Init", "VolumeDriver"),
        mounts: c["Mounts"].map { |m| m.slice("Type", "Source", "Destination", "RW") }.sort_by(&:to_s)
      }
    end

    # What differs from run to run whoever runs it: renamed containers' suffixes, container IDs.
    def normalize(text)
      text.gsub(/_replaced_\h{16}/, "_replaced_X").gsub(/\b\h{12}\b/, "CID").gsub(/\b\h{64}\b/, "ID")
    end

    # The commands run on `host`, in order, as both tools print them (`-v`).
    def commands(log, host)
      lines = log.split(/^::group::/).first.lines.map(&:chomp)
      found = []
      lines.each_with_index do |line, i|
        next unless line =~ /\A\s*(?:INFO|DEBUG) \[\h{8}\] Running (.*)\z/

        text = Regexp.last_match(1)
        unless text.match?(/ on \S+\z/)
          rest = lines[(i + 1)..].index { |l| l.match?(/ on \S+\z/) }
          text = ([ text ] + lines[(i + 1)..(i + 1 + rest.to_i)]).join("\n") if rest
        end
        next unless text.end_with?(" on #{host}")

        found << command_text(text.delete_suffix(" on #{host}"))
      end
      found
    end

    # One command as both print it: Kamal's `/usr/bin/env` prefix and run-to-run values left out.
    def command_text(command)
      normalize(command.sub(%r{\A/usr/bin/env }, ""))
        .gsub(/\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] \[[^\]]+\]/, "[TIME] [PERFORMER]")
        .gsub(/--hostname (\S+)-\h{12}/, '--hostname \1-X')
        .gsub(/echo "[A-Za-z0-9+\/=\n]+" > \.kamal\/lock/m, 'echo "DETAILS" > .kamal/lock')
    end
end
