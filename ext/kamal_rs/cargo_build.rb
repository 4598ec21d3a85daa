# How cargo's build of the extension becomes the file Ruby loads, from RbConfig alone (no rb_sys gem:
# Debian has none and rubygems.org may be out of reach). Shared by extconf.rb (`gem install`) and the
# Rakefile (`rake compile`, `rake gem:native`).
require "rbconfig"

module KamalRsBuild
  CRATE = "kamal_rs".freeze

  # One Ruby's build settings: `config` is RbConfig::CONFIG, or a stand-in in tests.
  class CargoBuild
    attr_reader :config

    def initialize(config = RbConfig::CONFIG, env: ENV)
      @config = config
      @env = env
    end

    def darwin?
      config["host_os"].to_s.include?("darwin")
    end

    def windows?
      config["host_os"].to_s.match?(/mswin|mingw|cygwin/)
    end

    # What cargo writes for a cdylib: libkamal_rs.so on Linux, libkamal_rs.dylib on macOS.
    def cargo_output
      windows? ? "#{CRATE}.dll" : "lib#{CRATE}.#{config.fetch("SOEXT")}"
    end

    # What Ruby's `require "kamal_rs/kamal_rs"` loads: kamal_rs.so on Linux, kamal_rs.bundle on macOS.
    def extension
      "#{CRATE}.#{config.fetch("DLEXT")}"
    end

    # On macOS a Ruby extension leaves Ruby's symbols undefined, to be found in the ruby process that
    # loads it (Ruby's own DLDFLAGS say `-undefined dynamic_lookup`; rb-sys's build script adds it too,
    # for a native build, oxidize-rb/rb-sys#88). Passing it here keeps a cross build from Linux right.
    def rustflags
      flags = [ @env["RUSTFLAGS"] ].compact
      flags << "-C link-arg=-Wl,-undefined,dynamic_lookup" if darwin?
      flags.join(" ")
    end

    def cargo
      @env.fetch("CARGO", "cargo")
    end

    # Whether `cargo` runs at all: a source install without Rust should stop at once, with one line.
    def cargo?
      system(cargo, "--version", out: File::NULL, err: File::NULL) ? true : false
    rescue SystemCallError
      false
    end

    def missing_cargo_message
      "kamal_rs: building from source needs Rust's cargo (#{cargo} was not found): install Rust " \
        "(https://rustup.rs), or install the precompiled gem for your platform (`gem install kamal_rs` " \
        "picks it where one exists)"
    end
  end
end
