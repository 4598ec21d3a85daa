# Builds the extension with cargo and nothing else (no rb_sys gem, see cargo_build.rb): this writes the
# Makefile that RubyGems (`gem install`) then runs with `make` / `make install`. The file names come from
# RbConfig, so the same Makefile takes libkamal_rs.so to kamal_rs.so on Linux and libkamal_rs.dylib to
# kamal_rs.bundle on macOS.
require_relative "cargo_build"

build = KamalRsBuild::CargoBuild.new
abort build.missing_cargo_message unless build.cargo?

root = File.expand_path("../..", __dir__)
target_dir = File.join(Dir.pwd, "cargo-target")
rustflags = build.rustflags
env = rustflags.empty? ? "" : "RUSTFLAGS=\"#{rustflags}\" "

File.write("Makefile", <<~MAKE)
  sitearchdir ?= #{build.config["sitearchdir"]}
  CARGO ?= #{build.cargo}
  # A caller may share a target directory between builds (the tests do); the default one is removed
  # after install.
  CARGO_TARGET_DIR ?= #{target_dir}
  export CARGO_TARGET_DIR

  all: #{build.extension}

  #{build.extension}:
  \tcd "#{root}" && #{env}$(CARGO) build --release --locked -p #{KamalRsBuild::CRATE}
  \tcp "$(CARGO_TARGET_DIR)/release/#{build.cargo_output}" #{build.extension}

  install: all
  \tmkdir -p "$(DESTDIR)$(sitearchdir)/kamal_rs"
  \tcp #{build.extension} "$(DESTDIR)$(sitearchdir)/kamal_rs/"
  \trm -rf "#{target_dir}"

  clean:
  \trm -f #{build.extension}

  .PHONY: all install clean
MAKE
