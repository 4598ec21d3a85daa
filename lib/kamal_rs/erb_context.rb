module KamalRs
  # What a config's ERB can use when Kamal renders it: Kamal itself is loaded (configs call
  # `Kamal::Utils.docker_arch`) and so is dotenv (Kamal depends on it; 1.x configs `require "dotenv"`).
  # Only a config that names them pays for them: the real gems when installed, else kamal_rs's own
  # small stand-ins (lib/kamal_rs/shims) with the same methods.
  module ErbContext
    SHIMS = File.join(__dir__, "shims")

    def self.prepare(source)
      provide("dotenv", :Dotenv) if source.match?(/\bDotenv\b|["']dotenv["']/)
      provide("kamal", :Kamal) if source.match?(/\bKamal::/)
    end

    # The real library when it can be loaded; else the stand-in, which `require "<lib>"` then finds.
    def self.provide(lib, constant)
      return if Object.const_defined?(constant)

      begin
        require lib
      rescue LoadError
        $LOAD_PATH.push(SHIMS) unless $LOAD_PATH.include?(SHIMS)
        require lib
      end
    end
  end
end
