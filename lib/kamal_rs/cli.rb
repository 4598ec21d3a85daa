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

    def self.start(argv, out: $stdout, err: $stderr)
      new(out: out, err: err).run(argv)
    end

    def initialize(out:, err:)
      @out = out
      @err = err
    end

    # Returns the exit status.
    def run(argv)
      trapping_term { dispatch(normalize(argv)) }
    rescue OptionParser::ParseError => e
      @err.puts thor_style(e)
      1
    rescue Interrupt, KamalRs::Interrupted => e
      error_line("Interrupt", "stopped by #{@signal || "SIGINT"}#{lock_note(KamalRs.result_of(e))}")
      @signal == "SIGTERM" ? 143 : 130
    rescue StandardError, ScriptError, SystemStackError => e
      # Every failure ends in one line, whatever raised it (a config's ERB included).
      error_line(e.class, e.message)
      @out.puts e.backtrace if ENV["VERBOSE"]
      1
    end

    private
      # SIGTERM (what CI runners send on cancel) stops the run as Ctrl-C does.
      def trapping_term
        previous = Signal.trap("TERM") do
          @signal = "SIGTERM"
          Thread.main.raise(Interrupt, "SIGTERM")
        end
        yield
      ensure
        Signal.trap("TERM", previous || "DEFAULT")
      end

      def error_line(klass, message)
        @out.puts "  \e[31mERROR (#{klass}): #{message}\e[0m"
      end

      # What became of the deploy lock, when the run got that far.
      def lock_note(result)
        case result&.lock
        when :released then "; the deploy lock was released"
        when :held then "; the deploy lock is still held on #{result.primary_host} (release it with `kamal lock release`)"
        else ""
        end
      end

      def dispatch(argv)
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
          options = parse(argv, command)
          ENV["VERBOSE"] = "1" if options[:verbose]
          send("#{command}_command", options)
        when "env"
          sub = argv.shift
          unless sub == "push"
            @err.puts %(Could not find command "env #{sub}".)
            return 1
          end
          KamalRs.env_push(**parse(argv, "env push"))
          0
        else
          @err.puts %(Could not find command "#{command}".)
          1
        end
      end

      def config_command(options)
        config = Configuration.create_from(**options.slice(*Options::CONFIG_NAMES))
        @out.puts config.to_yaml
        0
      end

      def deploy_command(options)
        KamalRs.deploy(**options)
        0
      end

      def redeploy_command(options)
        KamalRs.redeploy(**options)
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

      # Kamal's options for `command` (Options.cli), into a Hash of what was given.
      def parse(argv, command)
        options = {}
        parser = OptionParser.new
        Options.cli(command).each do |spec|
          long = spec[:name].to_s.tr("_", "-")
          switch = spec[:arg] ? "--#{long} #{spec[:arg]}" : "--[no-]#{long}"
          args = [ spec[:short], switch ].compact
          args << Float if spec[:kind] == :number
          parser.on(*args) { |value| options[spec[:name]] = value }
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
          lines += option_lines("Options", Options.cli(command))
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
        lines += option_lines("Options", Options.cli(nil))
        lines.join("\n")
      end

      def option_lines(title, specs)
        rows = specs.map do |spec|
          long = spec[:name].to_s.tr("_", "-")
          flag = spec[:arg] ? "[--#{long}=#{spec[:arg]}]" : "[--#{long}], [--no-#{long}], [--skip-#{long}]"
          default = spec[:default]
          default = default.to_i if default.is_a?(Float) && default == default.to_i
          [ "#{spec[:short] ? "#{spec[:short]}, " : "    "}#{flag}", spec[:description], default ]
        end
        width = rows.map { |r| r[0].length }.max
        lines = [ "#{title}:" ]
        rows.each do |left, desc, default|
          lines << "  #{left.ljust(width)}  # #{desc}"
          lines << "  #{" " * width}  # Default: #{default}" unless default.nil?
        end
        lines
      end
  end
end
