#[hotswap_guest::guest(name = "g", schema = 1)]
#[derive(Default)]
struct State;

fn main() {}
