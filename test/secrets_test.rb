require "test_helper"
require "json"
require "open3"
require "socket"

# `.kamal/secrets*` read by kamal_rs and by Ruby Kamal 2.12's own Kamal::Secrets#to_h (in its chroot,
# `kamal-2.12 --ruby`) on the same files and environment: the same values, or the same failure.
# kamal_rs reads them here with its own reader (this Ruby has no kamal gem), and hands `kamal secrets
# fetch` for a vault adapter to Ruby Kamal's executable (KAMAL_RS_KAMAL).
class SecretsTest < Minitest::Test
  CASES = File.join(FIXTURES, "secrets")
  ENVIRONMENT = { "KAMAL_RS_SECRETS_TEST_HOME" => "/home/tester", "VERSION" => "v1" }.freeze

  # Reads the secrets of `dir` in the chroot's Ruby with Kamal 2.12 loaded.
  KAMAL_READER = <<~RUBY.freeze
    require "kamal"
    require "json"
    dir, destination, out = ARGV
    Dir.chdir(dir)
    begin
      secrets = Kamal::Secrets.new(destination: destination.empty? ? nil : destination, secrets_path: ".kamal/secrets")
      File.write(out, JSON.dump("ok" => secrets.to_h))
    rescue Exception => e
      File.write(out, JSON.dump("error" => [ e.class.name, e.message ]))
    end
  RUBY

  def setup
    flunk "needs Ruby Kamal 2.12: script/install-ruby-kamal (script/setup runs it)" if RubyKamal.command.empty?
  end

  Dir[File.join(CASES, "*", ".kamal")].map { |d| File.dirname(d) }.sort.each do |dir|
    name = File.basename(dir)
    define_method("test_#{name}_reads_as_kamal_reads_it") do
      destinations = File.exist?(File.join(dir, ".kamal", "secrets.staging")) ? [ nil, "staging" ] : [ nil ]
      destinations.each do |destination|
        kamal = kamal_reads(dir, destination)
        assert kamal.key?("ok"), "Kamal failed on #{name}: #{kamal["error"]}"
        assert_equal kamal["ok"].to_a, ours(dir, destination).to_a, "#{name} (destination #{destination.inspect})"
      end
    end
  end

  Dir[File.join(CASES, "fails", "*")].sort.each do |dir|
    name = File.basename(dir)
    define_method("test_#{name}_stops_as_kamal_stops") do
      kamal_class, kamal_message = kamal_reads(dir, nil).fetch("error") { flunk "Kamal read #{name} without an error" }
      error = assert_raises(KamalRs::SecretsError) { ours(dir, nil) }
      assert_equal kamal_class, error.kamal_name, name unless kamal_class == "SystemExit"
      case kamal_class
      when "NoMethodError" # the message's wording is Ruby's (3.1 here, 3.3 in the chroot)
        assert_match(/\Aundefined method [`']chomp' for nil/, error.message)
      when "SystemExit" # Thor's usage error: Kamal prints it on stderr and exits 1
        refute_empty error.message
      else
        assert_equal kamal_message, error.message, name
      end
    end
  end

  # What Kamal's CLI prints of the same files: `kamal secrets print` under Kamal 2.12 and `KEY=value`
  # from kamal_rs, for a case that uses the documented fetch/extract lines.
  def test_a_documented_file_deploys_the_values_kamal_prints
    dir = File.join(CASES, "documented")
    out, status = Open3.capture2(ENVIRONMENT, *RubyKamal.command, "secrets", "print", chdir: with_config(dir))
    assert status.success?, out
    assert_equal out, ours(dir, nil).map { |k, v| "#{k}=#{v}\n" }.join
  end

  # A deploy whose secrets make Kamal stop: kamal-rs stops too, exit 1, with the error Kamal names for
  # them (`kamal secrets print` on the same files), before any host: the config's one host is a
  # listener on this machine that counts connections. (Kamal's own `deploy -P` connects first and
  # stops on these secrets at its `docker login`.)
  def test_a_deploy_stops_before_any_host_where_kamal_stops
    [ "extract_missing", "no_account", "bad_json", "unknown_adapter" ].each do |name|
      listener = TCPServer.new("127.0.0.1", 0)
      connections = 0
      counter = Thread.new { loop { listener.accept.close && connections += 1 } }
      dir = with_config(File.join(CASES, "fails", name), ssh_port: listener.addr[1])
      kamal_out, kamal_status = Open3.capture2e(ENVIRONMENT, *RubyKamal.command, "secrets", "print", chdir: dir)
      out, status = Open3.capture2e(ENVIRONMENT.merge("RUBYLIB" => File.join(ROOT, "lib"), "KAMAL_RS_KAMAL" => RubyKamal.command.shelljoin),
                                    RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), "deploy", "-P", chdir: dir)
      assert_equal 1, status.exitstatus, "#{name}: #{out}"
      assert_equal 0, connections, "#{name}: kamal-rs connected to the host\n#{out}"
      assert_equal 1, kamal_status.exitstatus, kamal_out
      error_line = ->(text) { text.lines.grep(/ERROR \(/).last&.sub(/for nil(:NilClass)?/, "for nil") }
      refute_nil error_line.(kamal_out), kamal_out
      assert_equal error_line.(kamal_out), error_line.(out), name
    ensure
      counter&.kill
      listener&.close
    end
  end

  # A secret the config names and the files do not give (here: its file named a tool that is not
  # installed, so Kamal reads nothing from it): Kamal stops at its first lookup of it, kamal-rs before
  # any host, with the same error.
  def test_a_missing_secret_stops_the_deploy_before_any_host
    listener = TCPServer.new("127.0.0.1", 0)
    connections = 0
    counter = Thread.new { loop { listener.accept.close && connections += 1 } }
    dir = with_config(File.join(CASES, "missing_tool"), ssh_port: listener.addr[1], password: "COMMON", env: "GITHUB_TOKEN")
    script = 'require "kamal"; begin; Kamal::Secrets.new(secrets_path: ".kamal/secrets")["GITHUB_TOKEN"]; rescue => e; puts "#{e.class}: #{e.message}"; end'
    kamal, status = Open3.capture2(*RubyKamal.command, "--ruby", "-e", script, chdir: dir)
    assert status.success?
    out, status = Open3.capture2e(ENVIRONMENT.merge("RUBYLIB" => File.join(ROOT, "lib")),
                                  RbConfig.ruby, File.join(ROOT, "exe", "kamal-rs"), "deploy", "-P", chdir: dir)
    assert_equal 1, status.exitstatus, out
    assert_equal 0, connections, out
    assert_equal "Kamal::ConfigurationError: Secret 'GITHUB_TOKEN' not found in .kamal/secrets-common, .kamal/secrets", kamal.chomp
    assert_includes out, "ERROR (Kamal::ConfigurationError): Secret 'GITHUB_TOKEN' not found in .kamal/secrets-common, .kamal/secrets"
  ensure
    counter&.kill
    listener&.close
  end

  # Where Kamal 2 can be loaded (here: in Ruby Kamal's chroot), kamal_rs reads with Kamal's own
  # Kamal::Secrets, and a failure comes out as a KamalRs::SecretsError naming Kamal's class.
  def test_with_kamal_loadable_kamals_own_code_reads
    script = <<~RUBY
      require "kamal_rs/errors"
      require "kamal_rs/secrets"
      Dir.chdir(ARGV[0]) { p [ KamalRs::Secrets.loadable_kamal, KamalRs::Secrets.read(secrets_path: ".kamal/secrets", destination: nil).keys ] }
      begin
        Dir.chdir(ARGV[1]) { KamalRs::Secrets.read(secrets_path: ".kamal/secrets", destination: nil) }
      rescue KamalRs::SecretsError => e
        p [ e.kamal_name, e.message ]
      end
    RUBY
    out, err, status = Open3.capture3(*RubyKamal.command, "--ruby", "-I#{File.join(ROOT, "lib")}", "-e", script,
                                      File.join(CASES, "documented"), File.join(CASES, "fails", "extract_missing"))
    assert status.success?, err
    assert_equal [ %([Kamal::Secrets, ["SECRETS", "KAMAL_REGISTRY_PASSWORD", "RAILS_MASTER_KEY", "DB_PASSWORD", "PARENS_JSON", "PARENS"]]),
                   %(["RuntimeError", "Could not find secret B"]) ], out.lines.map(&:chomp)
  end

  private
    def kamal_reads(dir, destination)
      Dir.mktmpdir do |tmp|
        script = File.join(tmp, "read.rb")
        File.write(script, KAMAL_READER)
        result = File.join(tmp, "result.json")
        _, err, status = Open3.capture3(ENVIRONMENT, *RubyKamal.command, "--ruby", script, dir, destination.to_s, result)
        assert status.success?, err
        JSON.parse(File.read(result))
      end
    end

    def ours(dir, destination)
      saved = ENV.to_h
      ENV.update(ENVIRONMENT.merge("KAMAL_RS_KAMAL" => RubyKamal.command.shelljoin))
      Dir.chdir(dir) { KamalRs::Secrets.read(secrets_path: ".kamal/secrets", destination: destination) }
    ensure
      ENV.replace(saved)
    end

    # A copy of the case with a config whose registry password and env name its secrets.
    def with_config(dir, ssh_port: 22, password: "KAMAL_REGISTRY_PASSWORD", env: "A")
      copy = Dir.mktmpdir
      FileUtils.cp_r(File.join(dir, "."), copy)
      FileUtils.mkdir_p(File.join(copy, "config"))
      File.write(File.join(copy, "config", "deploy.yml"), <<~YAML)
        service: secrets-test
        image: secrets-test/app
        servers: [ 127.0.0.1 ]
        ssh: { port: #{ssh_port} }
        registry: { server: localhost:5555, username: tester, password: [ #{password} ] }
        env: { secret: [ #{env} ] }
        builder: { arch: amd64 }
      YAML
      copy
    end
end
