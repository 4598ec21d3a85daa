require "json"
require "rbconfig"

module KamalRs
  # The native extension cannot be loaded in this Ruby: built for another Ruby or platform, or not built.
  class ExtensionLoadError < LoadError
    def self.kamal_name
      name
    end
  end

  # Finds and loads the native extension. A platform gem (`rake gem:native`) holds one build per Ruby
  # minor, `lib/kamal_rs/<major.minor>/kamal_rs.<DLEXT>`, and says in `lib/kamal_rs/extension.json` which
  # Rubies and platform it was built for; a source install (extconf.rb) or `rake compile` leaves one
  # `lib/kamal_rs/kamal_rs.<DLEXT>`, the fallback.
  module Extension
    SOURCE_BUILT = "kamal_rs/kamal_rs".freeze

    module_function

    def load!(dir: __dir__, ruby_version: RUBY_VERSION, platform: Gem::Platform.local.to_s)
      info = build_info(dir)
      minor = ruby_version[/\A\d+\.\d+/]
      prebuilt = File.join(dir, minor, "kamal_rs.#{RbConfig::CONFIG["DLEXT"]}")
      if File.exist?(prebuilt)
        raise ExtensionLoadError, built_for(info, minor, platform) if info && !fits?(info, platform)
        return require_extension(prebuilt) { |why| "#{cannot_load(info, prebuilt, minor, platform)} (#{why})" }
      end
      # A source build: extconf.rb installed it in the gem's extension directory, `rake compile` in lib/;
      # both are on the load path.
      require_extension(SOURCE_BUILT) do |why, missing|
        missing ? not_built(info, minor, platform) : "#{cannot_load(info, SOURCE_BUILT, minor, platform)} (#{why})"
      end
    end

    # Requires `feature`; a LoadError becomes an ExtensionLoadError with the block's message, given the
    # reason and whether the file was not found at all.
    def require_extension(feature)
      require feature
      feature
    rescue LoadError => e
      raise ExtensionLoadError, yield(e.message, e.path == feature)
    end

    def build_info(dir)
      file = File.join(dir, "extension.json")
      File.exist?(file) ? JSON.parse(File.read(file)) : nil
    end

    def fits?(info, platform)
      Gem::Platform.new(info["platform"]) === Gem::Platform.new(platform)
    end

    def not_built(info, minor, platform)
      return built_for(info, minor, platform) if info
      "kamal_rs: the native extension is not built. In a checkout run `rake compile`; otherwise " \
        "reinstall the gem (`gem install kamal_rs`)"
    end

    def built_for(info, minor, platform)
      rubies = Array(info["rubies"]).join(", ")
      "kamal_rs was built for Ruby #{rubies} on #{info["platform"]}; this is Ruby #{minor} on #{platform}: " \
        "reinstall with `gem install kamal_rs --platform ruby` to build from source"
    end

    def cannot_load(info, path, minor, platform)
      info ? built_for(info, minor, platform) : rebuild(path, minor, platform)
    end

    def rebuild(path, minor, platform)
      "kamal_rs's native extension #{path} does not load in Ruby #{minor} on #{platform}: rebuild it " \
        "(`rake compile` in a checkout, `gem pristine kamal_rs` for an installed gem)"
    end
  end
end
