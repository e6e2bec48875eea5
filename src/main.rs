fn main() {
    std::process::exit(cogpack::cli::main());
}
