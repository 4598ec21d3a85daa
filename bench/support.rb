# What the benchmarks share: the app's config for N lab hosts, timing, running a kamal_rs checkout.
require "open3"
require "securerandom"
require "net/http"
require "shellwords"
require "tmpdir"
require "fileutils"
require_relative "../test/lab/lab"

ROOT = File.expand_path("..", __dir__)
# KAMAL_RS_ROOT=/path/to/other/checkout times that checkout's kamal-rs (its lib/ with its built extension).
KAMAL_RS_ROOT = ENV.fetch("KAMAL_RS_ROOT", ROOT)

def config_for(hosts)
  Lab.app_config(hosts)
end

# A Ruby Kamal command to run beside kamal-rs (say "bundle exec kamal"); empty: none.
KAMAL = Shellwords.split(ENV["KAMAL_RS_BENCH_KAMAL"].to_s)

# An app's checkout for `hosts` in a temporary directory: config/deploy.yml (`config`, by default the
# lab app's) in a git repository, as where deploys are run (Kamal's lock reads the git version first).
def with_app(hosts, config = config_for(hosts))
  Dir.mktmpdir do |dir|
    FileUtils.mkdir_p(File.join(dir, "config"))
    File.write(File.join(dir, "config", "deploy.yml"), config)
    system("git init -q && git -c user.email=b@b -c user.name=b commit -q --allow-empty -m app", chdir: dir) or abort "git"
    yield dir
  end
end

# Every bench: root (it runs the lab) and the extension built from this checkout.
def prepare_bench!
  abort "the benchmark needs root (it runs the lab)" unless Process.uid.zero?
  system("rake", "compile", chdir: KAMAL_RS_ROOT, out: File::NULL) or abort "rake compile failed"
end

# The lab with `count` hosts at `rtt` ms: their addresses.
def lab_hosts(count, rtt)
  Lab.up(count, rtt: rtt)
  Lab.hosts.map { |h| h["ip"] }
end

def median(values)
  values.sort[values.size / 2]
end

def timed
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  ok = yield
  [ Process.clock_gettime(Process::CLOCK_MONOTONIC) - t, ok ]
end

def kamal_rs(dir, *args)
  timed do
    out, status = Open3.capture2e({ "RUBYLIB" => File.join(KAMAL_RS_ROOT, "lib") }, RbConfig.ruby,
                                  File.join(KAMAL_RS_ROOT, "exe", "kamal-rs"), *args, "-q", chdir: dir)
    warn out unless status.success?
    status.success?
  end
end

# Ruby Kamal's `args` in `dir`, timed.
def kamal(dir, *args)
  timed do
    out, status = Open3.capture2e(*KAMAL, *args, "-q", chdir: dir)
    warn out unless status.success?
    status.success?
  end
end

# The cold deploy of v1, once more if it failed: at 128 hosts the lab's one registry can time out a
# `docker login` among 128 at once (2 cores); the hosts that logged in skip it the second time.
def cold_deploy(dir)
  time, ok = kamal_rs(dir, "deploy", "-P", "--version", "v1")
  return [ time, ok ] if ok

  warn "the cold deploy failed (#{time.round(2)} s); once more"
  kamal_rs(dir, "deploy", "-P", "--version", "v1")
end

# [most SSH connections on one host, most remote commands on one host] since the transcripts were reset.
def per_host(hosts)
  lines = hosts.map { |h| Lab.transcript(h) }
  [ lines.map { |l| l.map { |e| e[:client] }.uniq.size }.max, lines.map(&:size).max ]
end

# The floor's work on every host at once, each over one new SSH connection: (`pull`: the image,) the
# `docker run` and `kamal-proxy deploy` of container `name` for `version` with the deploy's own options
# and env file, `docker stop` of container `stop`, tag latest. Nothing else.
def floor_run(hosts, name:, version:, stop:, pull: false)
  timed do
    hosts.map do |h|
      Thread.new do
        script = floor_script(h, image: "#{Lab::REGISTRY}/app", name: name, version: version, stop: stop, pull: pull)
        _, status = Open3.capture2e("ssh", "-F", Lab::SSH_CONFIG, "-o", "BatchMode=yes", h, script)
        status.success?
      end
    end.all?(&:value)
  end
end

# The floor's one remote command on host `h`: the least docker work of a redeploy (with `pull`) or a
# rollback, with the deploy's own options for the container.
def floor_script(h, image:, name:, version:, stop:, pull:)
  docker_run = "docker run --detach --restart unless-stopped --name #{name} --network kamal --hostname #{h}-#{SecureRandom.hex(6)} " \
               "--env KAMAL_CONTAINER_NAME=\"#{name}\" --env KAMAL_VERSION=\"#{version}\" --env KAMAL_HOST=\"#{h}\" " \
               "--env-file .kamal/apps/app/env/roles/web.env --log-opt max-size=\"10m\" " \
               "--label service=\"app\" --label role=\"web\" --label destination #{image}:#{version}"
  deploy = "docker exec kamal-proxy kamal-proxy deploy app-web --target=\"$(echo $cid | cut -c1-12):80\" --deploy-timeout=\"30s\" " \
           "--drain-timeout=\"30s\" --buffer-requests --buffer-responses --log-request-header=\"Cache-Control\" " \
           "--log-request-header=\"Last-Modified\" --log-request-header=\"User-Agent\""
  script = "cid=$(#{docker_run}) && #{deploy} && docker stop #{stop} >/dev/null && docker tag #{image}:#{version} #{image}:latest"
  pull ? "docker pull -q #{image}:#{version} >/dev/null && #{script}" : script
end

# A new version tag of the same image (the registry copies the manifest; no layer moves): each warm
# redeploy and each floor deploys a version the hosts have not run yet, as a release does. (Redeploying a
# version a host already ran adds Kamal's rename of the old container: one more docker call.)
MANIFEST_TYPES = %w[application/vnd.docker.distribution.manifest.v2+json application/vnd.oci.image.manifest.v1+json
                    application/vnd.docker.distribution.manifest.list.v2+json application/vnd.oci.image.index.v1+json].freeze
def fresh_version(from)
  version = "#{from}-#{SecureRandom.hex(4)}"
  http = Net::HTTP.new(*Lab::REGISTRY.split(":").then { |h, p| [ h, p.to_i ] })
  got = http.get("/v2/app/manifests/#{from}", "Accept" => MANIFEST_TYPES.join(", "))
  raise "registry: #{got.code} for app:#{from}" unless got.is_a?(Net::HTTPSuccess)

  put = http.put("/v2/app/manifests/#{version}", got.body, "Content-Type" => got["Content-Type"])
  raise "registry: #{put.code} tagging app:#{version}" unless put.is_a?(Net::HTTPSuccess)

  version
end

# pid => [ppid, comm] for every process.
def processes
  Dir.glob("/proc/[0-9]*/stat").filter_map do |f|
    stat = File.read(f)
    comm = stat[/\((.*)\)/m, 1]
    ppid = stat[(stat.rindex(")") + 2)..].split[1].to_i
    [ File.basename(File.dirname(f)).to_i, [ ppid, comm ] ]
  rescue Errno::ENOENT, Errno::ESRCH
    nil
  end.to_h
end

# Peak open files and threads of the kamal-rs (ruby) process, and peak ssh processes it started
# (the masters run on in the background, reparented, until the run closes them: counted by command line).
def sample(pid, run_dir_hint, every: 0.1)
  peak = Hash.new(0)
  while (Process.waitpid(pid, Process::WNOHANG)).nil?
    procs = processes
    # /usr/bin/time's child: Ruby renames itself (`kamal-rs`), so it is found by parent, not by name.
    ruby = procs.find { |_, (ppid, _)| ppid == pid }&.first
    if ruby
      fds = Dir.children("/proc/#{ruby}/fd").size rescue 0
      threads = File.read("/proc/#{ruby}/status")[/^Threads:\s+(\d+)/, 1].to_i rescue 0
      peak[:fds] = [ peak[:fds], fds ].max
      peak[:threads] = [ peak[:threads], threads ].max
    end
    ssh = procs.count do |p, (_, comm)|
      comm == "ssh" && (File.read("/proc/#{p}/cmdline").include?(run_dir_hint) rescue false)
    end
    peak[:ssh] = [ peak[:ssh], ssh ].max
    sleep every
  end
  [ peak, $?.success? ]
end
