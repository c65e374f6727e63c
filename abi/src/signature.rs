use std::borrow::Cow;
use std::fmt;

/// A WebAssembly number type that may cross the guest boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer (a `BigInt` in JS).
    I64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

/// A function type: parameters and results. ABI constants borrow static lists; signatures
/// read from a module at run time own theirs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FuncSig {
    /// Parameter types, in order.
    pub params: Cow<'static, [ValType]>,
    /// Result types.
    pub results: Cow<'static, [ValType]>,
}

impl FuncSig {
    /// A signature from static parts (for constants).
    pub const fn new(params: &'static [ValType], results: &'static [ValType]) -> Self {
        Self { params: Cow::Borrowed(params), results: Cow::Borrowed(results) }
    }

    /// A signature from parts read at run time.
    pub fn owned(params: Vec<ValType>, results: Vec<ValType>) -> Self {
        Self { params: Cow::Owned(params), results: Cow::Owned(results) }
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
        })
    }
}

/// Formats as `(i32, i32) -> i64` (a lone result bare, none as `()`), the form used in
/// error messages and docs.
impl fmt::Display for FuncSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, &self.params)?;
        f.write_str(" -> ")?;
        match &self.results[..] {
            [single] => write!(f, "{single}"),
            many => write_list(f, many),
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, types: &[ValType]) -> fmt::Result {
    f.write_str("(")?;
    for (i, t) in types.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{t}")?;
    }
    f.write_str(")")
}

#[cfg(test)]
mod tests {
    use super::{FuncSig, ValType::*};

    #[test]
    fn display_matches_the_abi_document() {
        assert_eq!(FuncSig::new(&[I32, I32], &[I64]).to_string(), "(i32, i32) -> i64");
        assert_eq!(FuncSig::new(&[], &[]).to_string(), "() -> ()");
    }
}
