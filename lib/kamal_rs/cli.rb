require "optparse"
require "kamal_rs/hand_over"

module KamalRs
  # `kamal-rs`: Kamal's command line (same option letters, same error format) for the commands kamal_rs
  # runs itself; every other command goes to Ruby Kamal (HandOver). Parsing stays in Ruby; the work is
  # done by the native core.
  class Cli
    COMMANDS = {
      "config" => "Show combined config (including secrets!)",
      "deploy" => "Deploy app to servers",
      "env push" => "Push the env files to the servers (Kamal 1.x configs; their deploys upload none)",
      "help" => "Describe available commands or one specific command",
      "redeploy" => "Deploy app to servers without bootstrapping servers, starting kamal-proxy and pruning",
      "rollback" => "Rollback app to VERSION (without one: the newest version every host still has)",
      "version" => "Show kamal_rs version"
    }.freeze
    USAGE = { "help" => "help [COMMAND]", "rollback" => "rollback [VERSION]" }.freeze

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
      # Every failure ends in one line, whatever raised it (a config's ERB included), naming the class
      # Kamal would name.
      error_line(kamal_name(e), e.message)
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

      # The class Kamal names for the failure: the error's own (a secrets failure carries the class Kamal
      # raised), its class's, else its Ruby class.
      def kamal_name(error)
        return error.kamal_name if error.respond_to?(:kamal_name)

        error.class.respond_to?(:kamal_name) ? error.class.kamal_name : error.class
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
          return HandOver.exec([ "help", *argv ]) if kamals?(argv.first)

          @out.puts(help(argv.first))
          0
        when "version"
          @out.puts VERSION
          0
        when "config", "deploy", "redeploy"
          options = parse(argv, command)
          ENV["VERBOSE"] = "1" if options[:verbose]
          send("#{command}_command", options)
        when "rollback"
          rollback_command(argv)
        when "env"
          return HandOver.exec([ command, *argv ]) unless argv.first == "push"

          KamalRs.env_push(**parse(argv.drop(1), "env push"))
          0
        when *HandOver::KAMAL_COMMANDS, *HandOver::KAMAL_1_COMMANDS
          HandOver.exec([ command, *argv ])
        else
          alias_command(command, argv)
        end
      end

      # An alias of the config's `aliases:` (Kamal 2, lib/kamal/cli/alias/command.rb): its command line,
      # then the arguments given after it, run as if typed; deploy, redeploy and rollback here, any
      # other command by Ruby Kamal. Kamal reads the config (with -c and -d) to find it.
      def alias_command(name, argv)
        @aliases_followed ||= 0
        expansion = Configuration.aliases(**config_options(argv))[name]
        unless expansion && (@aliases_followed += 1) <= 10
          @err.puts %(Could not find command "#{name}".)
          return 1
        end
        dispatch(normalize(Shellwords.split(expansion.to_s) + argv))
      end

      # -c and -d, as Thor reads them anywhere on the line.
      def config_options(argv)
        options = {}
        names = { "-c" => :config_file, "--config-file" => :config_file, "-d" => :destination, "--destination" => :destination }
        argv.each_with_index do |arg, i|
          flag, value = arg.start_with?("--") ? arg.split("=", 2) : [ arg[0, 2], (arg[2..] unless arg.length <= 2) ]
          next unless (key = names[flag])

          options[key] = value || argv[i + 1]
        end
        options
      end

      def config_command(options)
        config = Configuration.create_from(**options.slice(*Options::CONFIG_NAMES))
        @out.puts config.to_yaml
        0
      end

      # 0 when every targeted host runs the new version, 3 when hosts were left behind within --max-fail.
      def deploy_command(options)
        exit_status(KamalRs.deploy(**options))
      end

      def redeploy_command(options)
        exit_status(KamalRs.redeploy(**options))
      end

      def exit_status(result)
        result.complete? ? 0 : 3
      end

      # `rollback [VERSION]`: the version as Kamal's argument (or --version), else chosen on the servers.
      def rollback_command(argv)
        options = parse(argv, "rollback", positional: 1)
        version = options.delete(:arguments).first
        ENV["VERBOSE"] = "1" if options[:verbose]
        exit_status(KamalRs.rollback(version, **options))
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

      # Kamal's options for `command` (Options.cli), into a Hash of what was given; up to `positional`
      # arguments come back as :arguments.
      def parse(argv, command, positional: 0)
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
        raise OptionParser::NeedlessArgument, rest.drop(positional).join(" ") if rest.size > positional
        options[:arguments] = rest if positional.positive?
        options
      end

      def thor_style(error)
        case error
        when OptionParser::InvalidOption then %(Unknown switches "#{error.args.join(", ")}")
        when OptionParser::MissingArgument then "No value provided for option '#{error.args.join}'"
        else error.message
        end
      end

      def kamals?(command)
        (HandOver::KAMAL_COMMANDS + HandOver::KAMAL_1_COMMANDS).include?(command)
      end

      def help(command)
        if command && COMMANDS[command]
          lines = [ "Usage:", "  kamal-rs #{USAGE.fetch(command, command)}", "" ]
          lines += option_lines("Options", Options.cli(command))
          lines << "" << COMMANDS[command]
          return lines.join("\n")
        end
        usages = COMMANDS.keys.map { |name| "kamal-rs #{USAGE.fetch(name, name)}" }
        width = usages.map(&:length).max
        lines = [ "Commands:" ]
        usages.zip(COMMANDS.values).each { |usage, desc| lines << "  #{usage.ljust(width)}  # #{desc}" }
        lines << "" << "Kamal's other commands, handed to Ruby Kamal with the same arguments:"
        lines << "  #{HandOver::KAMAL_COMMANDS.join(", ")} (1.x: also #{HandOver::KAMAL_1_COMMANDS.join(", ")})"
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
