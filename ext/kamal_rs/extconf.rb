# Builds the extension with cargo and nothing else: Debian has no rb_sys gem and rubygems.org may be out
# of reach, so this writes the Makefile that RubyGems (`gem install`) then runs with `make` / `make install`.
require "rbconfig"

root = File.expand_path("../..", __dir__)
dlext = RbConfig::CONFIG["DLEXT"]
target_dir = File.join(Dir.pwd, "cargo-target")
sitearchdir = RbConfig::CONFIG["sitearchdir"]

File.write("Makefile", <<~MAKE)
  sitearchdir ?= #{sitearchdir}
  CARGO ?= cargo

  all: kamal_rs.#{dlext}

  kamal_rs.#{dlext}:
  \tcd "#{root}" && CARGO_TARGET_DIR="#{target_dir}" $(CARGO) build --release --locked -p kamal_rs
  \tcp "#{target_dir}/release/libkamal_rs.so" kamal_rs.#{dlext}

  install: all
  \tmkdir -p "$(DESTDIR)$(sitearchdir)/kamal_rs"
  \tcp kamal_rs.#{dlext} "$(DESTDIR)$(sitearchdir)/kamal_rs/"
  \trm -rf "#{target_dir}"

  clean:
  \trm -f kamal_rs.#{dlext}

  .PHONY: all install clean
MAKE
