module KamalRs
  VERSION = "0.1.0"
  # The Kamal release whose behaviour kamal_rs reproduces (also what `minimum_version` is checked against).
  KAMAL_VERSION = "2.12.0"
end
