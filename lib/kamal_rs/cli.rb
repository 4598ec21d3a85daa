require "optparse"

module KamalRs
  # `kamal-rs`: Kamal's command line (same option letters, same error format) for the commands kamal_rs
  # runs itself. Parsing stays in Ruby; the work is done by the native core.
  class Cli
    COMMANDS = {
      "config" => "Show combined config (including secrets!)",
      "deploy" => "Deploy app to servers",
      "env push" => "Push the env files to the servers (Kamal 1.x configs; their deploys upload none)",
      "help" => "Describe available commands or one specific command",
      "redeploy" => "Deploy app to servers without bootstrapping servers, starting kamal-proxy and pruning",
      "version" => "Show kamal_rs version"
    }.freeze

    # [short, long, argument, description, default] — Kamal's class options (reference §1.1).
    GLOBAL_OPTIONS = [
      [ "-v", "verbose", nil, "Detailed logging" ],
      [ "-q", "quiet", nil, "Minimal logging" ],
      [ nil, "version", "VERSION", "Run commands against a specific app version" ],
      [ "-p", "primary", nil, "Run commands only on primary host instead of all" ],
      [ "-h", "hosts", "HOSTS", "Run commands on these hosts instead of all (separate by comma, supports wildcards with *)" ],
      [ "-r", "roles", "ROLES", "Run commands on these roles instead of all (separate by comma, supports wildcards with *)" ],
      [ "-c", "config-file", "CONFIG_FILE", "Path to config file", "config/deploy.yml" ],
      [ "-d", "destination", "DESTINATION", "Specify destination to be used for config file (staging -> deploy.staging.yml)" ],
      [ "-H", "skip-hooks", nil, "Don't run hooks", "false" ],
      [ nil, "lock-wait", nil, "Wait for the deploy lock instead of failing", "false" ],
      [ nil, "lock-wait-timeout", "N", "Seconds to wait for the deploy lock", "900" ],
      [ nil, "lock-wait-interval", "N", "Seconds between checks of the deploy lock", "15" ]
    ].freeze

    DEPLOY_OPTIONS = [
      [ "-P", "skip-push", nil, "Skip image build and push", "false" ],
      [ nil, "no-cache", nil, "Build without using Docker's build cache", "false" ]
    ].freeze

    def self.start(argv, out: $stdout, err: $stderr)
      new(out: out, err: err).run(argv)
    end

    def initialize(out:, err:)
      @out = out
      @err = err
    end

    # Returns the exit status.
    def run(argv)
      argv = normalize(argv)
      command = argv.find { |arg| !arg.start_with?("-") } if argv.first&.start_with?("-")
      command ||= argv.first
      argv = argv.dup
      argv.delete_at(argv.index(command)) if command

      case command
      when nil, "help", "--help"
        @out.puts(help(argv.first))
        0
      when "version"
        @out.puts VERSION
        0
      when "config", "deploy", "redeploy"
        options = parse(argv, with_deploy: command != "config")
        ENV["VERBOSE"] = "1" if options[:verbose]
        send("#{command}_command", options)
      when "env"
        sub = argv.shift
        unless sub == "push"
          @err.puts %(Could not find command "env #{sub}".)
          return 1
        end
        options = parse(argv, with_deploy: false)
        keys = KamalRs::OPTION_NAMES + %i[config_file destination version]
        KamalRs.env_push(**options.slice(*keys))
        0
      else
        @err.puts %(Could not find command "#{command}".)
        1
      end
    rescue OptionParser::ParseError => e
      @err.puts thor_style(e)
      1
    rescue Interrupt, KamalRs::Interrupted
      @out.puts "  \e[31mERROR (Interrupt): stopped; the lock was released\e[0m"
      130
    rescue StandardError => e
      @out.puts "  \e[31mERROR (#{e.class}): #{e.message}\e[0m"
      @out.puts e.backtrace if ENV["VERBOSE"]
      1
    end

    private
      def config_command(options)
        config = Configuration.create_from(config_file: options[:config_file],
          destination: options[:destination], version: options[:version])
        @out.puts config.to_yaml
        0
      end

      def deploy_command(options)
        run_deploy(:deploy, options)
      end

      def redeploy_command(options)
        run_deploy(:redeploy, options)
      end

      def run_deploy(command, options)
        keys = KamalRs::OPTION_NAMES + %i[config_file destination version]
        KamalRs.public_send(command, **options.slice(*keys))
        0
      end

      # Thor accepts `--skip_push` for `--skip-push`.
      def normalize(argv)
        argv.map do |arg|
          if arg.start_with?("--") && !arg.include?("=")
            arg.tr("_", "-")
          elsif arg.start_with?("--")
            name, value = arg.split("=", 2)
            "#{name.tr("_", "-")}=#{value}"
          else
            arg
          end
        end
      end

      def parse(argv, with_deploy:)
        options = { lock_wait_timeout: 900, lock_wait_interval: 15 }
        parser = OptionParser.new
        specs = GLOBAL_OPTIONS + (with_deploy ? DEPLOY_OPTIONS : [])
        specs.each do |short, long, arg, _desc|
          key = long.tr("-", "_").to_sym
          switch = arg ? "--#{long} #{arg}" : "--[no-]#{long}"
          args = [ short, switch ].compact
          args << Float if long.start_with?("lock-wait-")
          parser.on(*args) { |value| options[key] = value }
        end
        rest = parser.parse(argv)
        raise OptionParser::NeedlessArgument, rest.join(" ") if rest.any?
        options
      end

      def thor_style(error)
        case error
        when OptionParser::InvalidOption then %(Unknown switches "#{error.args.join(", ")}")
        when OptionParser::MissingArgument then "No value provided for option '#{error.args.join}'"
        else error.message
        end
      end

      def help(command)
        if command && COMMANDS[command]
          lines = [ "Usage:", "  kamal-rs #{command}", "" ]
          lines += option_lines("Options", GLOBAL_OPTIONS + (%w[deploy redeploy].include?(command) ? DEPLOY_OPTIONS : []))
          lines << "" << COMMANDS[command]
          return lines.join("\n")
        end
        width = COMMANDS.keys.map { |c| "kamal-rs #{c}#{" [COMMAND]" if c == "help"}".length }.max
        lines = [ "Commands:" ]
        COMMANDS.each do |name, desc|
          usage = "kamal-rs #{name}#{" [COMMAND]" if name == "help"}"
          lines << "  #{usage.ljust(width)}  # #{desc}"
        end
        lines << ""
        lines += option_lines("Options", GLOBAL_OPTIONS)
        lines.join("\n")
      end

      def option_lines(title, specs)
        rows = specs.map do |short, long, arg, desc, default|
          flag = arg ? "[--#{long}=#{arg}]" : "[--#{long}], [--no-#{long}], [--skip-#{long}]"
          [ "#{short ? "#{short}, " : "    "}#{flag}", desc, default ]
        end
        width = rows.map { |r| r[0].length }.max
        lines = [ "#{title}:" ]
        rows.each do |left, desc, default|
          lines << "  #{left.ljust(width)}  # #{desc}"
          lines << "  #{" " * width}  # Default: #{default}" if default
        end
        lines
      end
  end
end
