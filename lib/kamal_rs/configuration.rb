require "yaml"
require "kamal_rs/secrets"

module KamalRs
  # The resolved deploy config. Ruby reads the files as Kamal does (ERB with trim_mode "-", then YAML
  # with aliases; for a Kamal 1.x config, `.env` files first and ERB without trim mode, as 1.9); the
  # native core merges the destination file, validates and derives every name.
  class Configuration
    DEFAULT_CONFIG_FILE = "config/deploy.yml"

    def self.create_from(config_file: nil, destination: nil, version: nil)
      # Kamal sets this before ERB runs, so ERB, hooks and secrets commands can read it.
      ENV["KAMAL_DESTINATION"] = destination
      files = config_files(config_file, destination)
      # Which Kamal the config is for shows only once it is read; Kamal 1.x loads `.env` (then
      # `.env.<destination>`) into ENV before its ERB runs, and that ERB has no trim mode. So a first
      # read decides, and a 1.x config is read again with its `.env` loaded. A first read that fails
      # (an ERB `ENV.fetch` of a `.env` value, say) is retried that way, and kept only if it is 1.x.
      begin
        config = read(files, destination, version, trim_mode: "-")
        return config unless config.kamal_major == 1
      rescue StandardError => e
        raise unless File.exist?(".env")

        first_error = e
      end
      load_dotenv(destination)
      config = read(files, destination, version, trim_mode: nil)
      raise first_error if first_error && config.kamal_major != 1

      config
    end

    # The config's `aliases:` (name => command line), read as Kamal's resolve_alias reads them: the
    # files rendered and merged, nothing validated.
    def self.aliases(config_file: nil, destination: nil)
      ENV["KAMAL_DESTINATION"] = destination
      raw = config_files(config_file, destination).map { |file| load_file(file) }.inject({}) { |merged, tree| deep_merge(merged, tree.is_a?(Hash) ? tree : {}) }
      raw["aliases"].is_a?(Hash) ? raw["aliases"] : {}
    end

    # The base file (absolute, as Kamal names it in its errors), then the destination's.
    def self.config_files(config_file, destination)
      base = File.expand_path((config_file || DEFAULT_CONFIG_FILE).to_s)
      [ base, ("#{base.delete_suffix(File.extname(base))}.#{destination}.yml" if destination) ].compact
    end
    private_class_method :config_files

    def self.deep_merge(base, other)
      base.merge(other) { |_, a, b| a.is_a?(Hash) && b.is_a?(Hash) ? deep_merge(a, b) : b }
    end
    private_class_method :deep_merge

    def self.read(files, destination, version, trim_mode:)
      trees = files.map { |file| load_file(file, trim_mode: trim_mode) }
      foreign = []
      new(Native::Configuration.load(trees, destination, version, ENV["VERSION"], foreign), foreign).tap do |config|
        # Kamal looks up `ssh.key_data`'s names among the secrets as it reads the config.
        config.read_secrets if config.native.secrets_read_with_config
        # As Kamal: on stderr, each time a config is read.
        config.native.warnings.each { |w| warn w }
      end
    end

    def self.load_file(file, trim_mode: "-")
      raise KamalRs::RuntimeError, "Configuration file not found in #{file}" unless File.exist?(file)

      yaml = render(File.read(file), trim_mode)
      begin
        YAML.unsafe_load(yaml)
      rescue SystemStackError
        # Psych builds Ruby objects recursively: thousands of levels exhaust the stack.
        raise KamalRs::ConfigurationError,
              "#{file} is nested too deeply to be read (its YAML goes thousands of levels deep; a deploy config is a few)"
      end
    end

    # ERB, as Kamal runs it on every config file. Text without a `<%` tag comes out unchanged, so ERB
    # is only loaded (a few ms of every run's start) for a file that has one.
    def self.render(source, trim_mode)
      return source unless source.include?("<%")

      require "erb"
      ErbContext.prepare(source)
      ERB.new(source, trim_mode: trim_mode).result
    end
    private_class_method :render

    # Dotenv.overload: each file's values replace what ENV has.
    def self.load_dotenv(destination)
      [ ".env", (".env.#{destination}" if destination) ].compact.each do |file|
        next unless File.exist?(file)

        Native.parse_dotenv(File.read(file)).each { |key, value| ENV[key] = value }
      end
    end

    # `foreign` holds the Ruby objects (dates...) the native model keeps opaque.
    def initialize(native, foreign)
      @native = native
      @foreign = foreign
    end

    # Reads `.kamal/secrets*` (KamalRs::Secrets) for the native core, once; a 1.x config's secrets are
    # ENV's.
    def read_secrets
      return if @secrets_read

      if (path, destination = @native.secrets_to_read)
        @native.provide_secrets(Secrets.read(secrets_path: path, destination: destination).to_a)
      end
      @secrets_read = true
    end

    # What `kamal config` prints: Kamal's Configuration#to_h.
    def to_h
      @native.to_h(@foreign)
    end

    def to_yaml
      to_h.to_yaml
    end

    # The native configuration (KamalRs::Native::Configuration).
    attr_reader :native

    # 1 for a Kamal 1.x (Traefik) config, 2 for Kamal 2.x.
    def kamal_major = @native.kamal_major
    def version = @native.version
    def service = @native.service
    def destination = @native.destination
    def roles = @native.role_names
    def hosts = @native.all_hosts
    def primary_host = @native.primary_host
  end
end
