pub mod nogvl;
