module KamalRs
  # The options of a run, declared once in the native core (`crates/kamal_rs_core/src/runner/options.rs`)
  # with their letters, help and defaults. The command line, KamalRs.deploy and the Rake tasks all take
  # their option names from here, and hand the chosen values to the core as one Hash.
  module Options
    # Each option: name (Symbol), short ("-P" or nil), arg ("VERSION", nil for a flag), kind (:flag,
    # :text, :number), scope (:global, :deploy, :rollout, :api), default, description, config (read with the config).
    SPECS = Native.options.map do |spec|
      spec.merge(name: spec[:name].to_sym, kind: spec[:kind].to_sym, scope: spec[:scope].to_sym)
    end.freeze

    # Every keyword KamalRs.deploy takes.
    NAMES = SPECS.map { |s| s[:name] }.freeze
    # Read when the configuration is loaded (config_file, destination, version).
    CONFIG_NAMES = SPECS.select { |s| s[:config] }.map { |s| s[:name] }.freeze

    # The options offered on the command line for `command`.
    def self.cli(command)
      scopes = [ :global ]
      scopes << :deploy if %w[deploy redeploy].include?(command)
      scopes << :rollout if %w[deploy redeploy rollback].include?(command)
      SPECS.select { |s| scopes.include?(s[:scope]) }
    end

    def self.spec(name)
      SPECS.find { |s| s[:name] == name }
    end

    # The Hash the native run takes: the command, the run's own options (lists joined with commas,
    # numbers as Floats), and whether stdout is a terminal.
    def self.native(command, options)
      unknown = options.keys - NAMES
      raise ::ArgumentError, "unknown option#{"s" if unknown.size > 1}: #{unknown.join(", ")}" if unknown.any?

      run = options.reject { |name, value| CONFIG_NAMES.include?(name) || value.nil? }
      run.to_h do |name, value|
        value = value.join(",") if value.is_a?(Array)
        value = Float(value) if spec(name)[:kind] == :number
        [ name.to_s, value ]
      end.merge("command" => command.to_s, "terminal" => $stdout.tty? && !options[:quiet])
         .merge(options[:config_file] ? { "config_file" => options[:config_file].to_s } : {})
    end

    # For a Rake task: each option from its environment variable (SKIP_PUSH=1, HOSTS=...); task
    # arguments (destination, version) first.
    def self.from_env(args = {}, env = ENV)
      SPECS.each_with_object({}) do |spec, options|
        name = spec[:name]
        value = args[name] || env[name.to_s.upcase]
        next if value.nil? || value == ""

        options[name] = spec[:kind] == :flag ? %w[1 true yes].include?(value.to_s.downcase) : value
      end
    end
  end
end
