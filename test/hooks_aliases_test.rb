require "test_helper"
require "open3"
require "socket"

# Hooks and aliases beside Ruby Kamal 2.12 on the same app: what a hook prints under each
# `hooks_output` and -q/-v, the environment a rollback's `pre-connect` hook gets, and `aliases:`.
# The app's one host is a port on this machine that refuses connections: both tools run the
# `pre-connect` hook, then stop at the first connection.
class HooksAliasesTest < Minitest::Test
  def setup
    flunk "needs Ruby Kamal 2.12: script/install-ruby-kamal (script/setup runs it)" if RubyKamal.command.empty?
    @app = Dir.mktmpdir("hooks")
    port = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
    FileUtils.mkdir_p(File.join(@app, ".kamal", "hooks"))
    FileUtils.mkdir_p(File.join(@app, "config"))
    File.write(File.join(@app, ".kamal", "secrets"), "KAMAL_REGISTRY_PASSWORD=hook-secret\n")
    hook = File.join(@app, ".kamal", "hooks", "pre-connect")
    File.write(hook, "#!/bin/sh\necho \"out $KAMAL_VERSION\"\nenv | grep '^KAMAL_' | sort > \"$0.env\"\n")
    File.chmod(0o755, hook)
    @base = <<~YAML
      service: hooks
      image: hooks/app
      servers: [ 127.0.0.1 ]
      ssh: { port: #{port} }
      registry: { server: registry.invalid:5000, username: tester, password: [ KAMAL_REGISTRY_PASSWORD ] }
      builder: { arch: amd64 }
      aliases:
        ship: deploy -P
        where: app version
        cfg: config
    YAML
    system("git init -q && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m app", chdir: @app, exception: true)
  end

  def teardown
    FileUtils.rm_rf(@app) if @app
  end

  # The hook's lines for every `hooks_output` and -q/-v: Kamal's, line for line (uuids and times aside):
  # Running and Finished with no setting, nothing when quiet, `Command:` and the output too when verbose.
  def test_hooks_output_as_kamal_shows_it
    seen = []
    [ nil, "quiet", "verbose", "{ pre-connect: quiet }", "{ pre-connect: verbose }", "{ pre-build: quiet }" ].each do |setting|
      write_config(setting && "hooks_output: #{setting}")
      [ [], [ "-q" ], [ "-v" ] ].each do |flags|
        kamal = hook_lines(tool_run(:kamal, "deploy", "-P", *flags))
        ours = hook_lines(tool_run(:kamal_rs, "deploy", "-P", *flags))
        assert_equal kamal, ours, "hooks_output: #{setting.inspect}, #{flags.inspect}"
        seen << [ setting, flags, ours.size ]
      end
    end
    assert_includes seen, [ nil, [], 2 ]
    assert_includes seen, [ "{ pre-connect: quiet }", [], 0 ]
    assert_includes seen, [ "{ pre-connect: verbose }", [], 4 ]
    assert_includes seen, [ "{ pre-connect: quiet }", [ "-v" ], 4 ]
  end

  # Kamal runs a rollback's `pre-connect` as it takes the lock, before it sets the rollback's version:
  # the hook sees the app's own (git HEAD, or VERSION). The same environment from kamal-rs.
  def test_a_rollbacks_pre_connect_hook_gets_kamals_environment
    write_config(nil)
    [ {}, { "VERSION" => "app-env-version" } ].each do |env|
      kamal = tool_run(:kamal, "rollback", "old-version", env: env) && hook_env
      ours = tool_run(:kamal_rs, "rollback", "old-version", env: env) && hook_env
      refute_empty kamal
      assert_equal kamal, ours, env.inspect
      assert_includes ours, "KAMAL_COMMAND=rollback"
      refute ours.any? { |l| l.include?("old-version") }, ours.inspect
    end
  end

  # `aliases:`: an alias of deploy runs natively (kamal-rs's own per-host lines), any other is handed
  # to Ruby Kamal (as `app version` spelled out is), and an alias that is not there is Kamal's error.
  def test_aliases_run_as_kamal_runs_them
    write_config(nil)
    ours = tool_run(:kamal_rs, "ship")
    assert_match(/127\.0\.0\.1: web: not booted/, ours, "ship ran natively")
    # Both stop at the host, which refuses connections (Kamal names Errno's class, kamal-rs says why).
    [ tool_run(:kamal, "ship"), ours ].each { |out| assert_match(/Exception while executing on host 127\.0\.0\.1: .*refused/i, error_line(out)) }
    assert_equal error_line(tool_run(:kamal, "where")), error_line(tool_run(:kamal_rs, "where", env: { "KAMAL_RS_KAMAL" => RubyKamal.command.shelljoin }))
    assert_equal tool_run(:kamal, "cfg", env: { "VERSION" => "v1" }), tool_run(:kamal_rs, "cfg", env: { "VERSION" => "v1" })
    kamal_out, kamal_err, kamal_status = Open3.capture3(*RubyKamal.command, "nope", chdir: @app)
    out, err, status = Open3.capture3({ "RUBYLIB" => File.join(ROOT, "lib") }, RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), "nope", chdir: @app)
    assert_equal [ kamal_out, kamal_err, kamal_status.exitstatus ], [ out, err, status.exitstatus ]
  end

  private
    def write_config(extra)
      File.write(File.join(@app, "config", "deploy.yml"), [ @base, extra ].compact.join)
    end

    def tool_run(tool, *args, env: {})
      command = tool == :kamal ? RubyKamal.command : [ RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs") ]
      full = { "RUBYLIB" => File.join(ROOT, "lib"), "VERSION" => nil }.merge(env)
      out, = Open3.capture2e(full, *command, *args, chdir: @app)
      out
    end

    # The hook's own lines: those of the uuid its `Running` line has, uuid and times taken out, the
    # output lines sorted (Kamal prints stdout and stderr as they arrive).
    def hook_lines(out)
      uuid = out[/\[(\h+)\] Running \/usr\/bin\/env \.kamal\/hooks\/pre-connect/, 1]
      return [] unless uuid

      lines = out.lines.grep(/\[#{uuid}\]/).map { |l| l.gsub(uuid, "U").gsub(/\d+\.\d+ seconds/, "T seconds").rstrip }
      output, rest = lines.partition { |l| l.include?("\t") }
      rest + output.sort
    end

    def hook_env
      File.readlines(File.join(@app, ".kamal", "hooks", "pre-connect.env"), chomp: true)
          .reject { |l| l.start_with?("KAMAL_RECORDED_AT=") }
          .tap { File.delete(File.join(@app, ".kamal", "hooks", "pre-connect.env")) }
    end

    def error_line(out)
      out.lines.grep(/ERROR/).last.to_s.strip
    end
end
