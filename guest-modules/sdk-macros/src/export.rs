use hotswap_abi::{MAX_USER_PARAMS, RESERVED_PREFIX};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{spanned::Spanned, FnArg, ItemFn, Pat, ReturnType, Type};

const NUMBERS: [&str; 6] = ["i32", "u32", "i64", "u64", "f32", "f64"];

/// What one parameter of an exported function is.
enum Param<'a> {
    /// `&mut S` or `&S`: the guest's state.
    State(&'a Type),
    /// `&[u8]`, `&str`, `Vec<u8>` or `String`.
    Bytes(&'a Type),
    /// A number.
    Number(&'a Type),
}

pub fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !args.is_empty() {
        return Err(syn::Error::new_spanned(args, "#[export] takes no arguments"));
    }
    let func: ItemFn = syn::parse2(item)?;
    check_signature(&func)?;
    let params = func.sig.inputs.iter().map(classify).collect::<syn::Result<Vec<_>>>()?;
    let (state, rest) = match params.split_first() {
        Some((Param::State(ty), rest)) => (Some(*ty), rest),
        _ => (None, &params[..]),
    };
    if let Some(Param::State(ty)) = rest.iter().find(|p| matches!(p, Param::State(_))) {
        return Err(syn::Error::new_spanned(ty, "the state parameter must come first"));
    }
    let glue = if is_bytes_export(rest, &func.sig.output) {
        bytes_glue(&func, state, rest)?
    } else {
        numeric_glue(&func, state, rest)?
    };
    Ok(quote! { #func #glue })
}

fn check_signature(func: &ItemFn) -> syn::Result<()> {
    let sig = &func.sig;
    let name = sig.ident.to_string();
    let refuse = |tokens: &dyn quote::ToTokens, why: &str| Err(syn::Error::new_spanned(tokens, why));
    if name.starts_with(RESERVED_PREFIX) {
        return refuse(&sig.ident, "names starting with `hotswap_` are reserved for the ABI");
    }
    if let Some(t) = &sig.asyncness {
        return refuse(t, "a guest export cannot be async");
    }
    if let Some(t) = &sig.unsafety {
        return refuse(t, "a guest export cannot be unsafe");
    }
    if !sig.generics.params.is_empty() {
        return refuse(&sig.generics, "a guest export cannot be generic");
    }
    if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
        return refuse(r, "a guest export is a free function, not a method");
    }
    Ok(())
}

fn classify(arg: &FnArg) -> syn::Result<Param<'_>> {
    let FnArg::Typed(pat) = arg else {
        return Err(syn::Error::new_spanned(arg, "unexpected receiver"));
    };
    if !matches!(*pat.pat, Pat::Ident(_)) {
        return Err(syn::Error::new_spanned(&pat.pat, "use a plain parameter name"));
    }
    let ty = &*pat.ty;
    if is_bytes_type(ty) {
        Ok(Param::Bytes(ty))
    } else if is_number(ty) {
        Ok(Param::Number(ty))
    } else if let Type::Reference(r) = ty {
        Ok(Param::State(&r.elem))
    } else {
        Err(syn::Error::new_spanned(
            ty,
            "unsupported parameter type: expected &mut State, &State, one of &[u8], &str, \
             Vec<u8>, String, or numbers (i32, u32, i64, u64, f32, f64)",
        ))
    }
}

fn is_bytes_export(params: &[Param], output: &ReturnType) -> bool {
    match params.first() {
        Some(Param::Bytes(_)) => true,
        Some(_) => false,
        None => match output {
            ReturnType::Default => false,
            ReturnType::Type(_, ty) => !is_number(ty) && !is_unit(ty),
        },
    }
}

fn bytes_glue(func: &ItemFn, state: Option<&Type>, rest: &[Param]) -> syn::Result<TokenStream> {
    let input_ty = match rest {
        [] => None,
        [Param::Bytes(ty)] => Some(*ty),
        [_, extra, ..] | [extra @ Param::Number(_)] | [extra @ Param::State(_)] => {
            return Err(syn::Error::new(
                param_span(extra),
                "a bytes export takes at most one input (&[u8], &str, Vec<u8> or String) and no numbers",
            ))
        }
    };
    let name = &func.sig.ident;
    let wrapper = format_ident!("__hotswap_export_{}", name);
    let export_name = name.to_string();
    let args: Vec<TokenStream> = input_ty
        .map(|ty| quote! { <#ty as ::hotswap_guest::__rt::FromInput>::from_input(input) })
        .into_iter()
        .collect();
    let call = with_state(state, quote! { #name }, &args);
    Ok(quote! {
        #[doc(hidden)]
        #[unsafe(export_name = #export_name)]
        pub unsafe extern "C" fn #wrapper(ptr: u32, len: u32) -> u64 {
            // SAFETY: the host passes a buffer it obtained from hotswap_alloc and filled.
            unsafe {
                ::hotswap_guest::__rt::call_bytes(ptr, len, |input| {
                    let _ = input;
                    ::hotswap_guest::__rt::IntoOutput::into_output(#call)
                })
            }
        }
    })
}

fn numeric_glue(func: &ItemFn, state: Option<&Type>, rest: &[Param]) -> syn::Result<TokenStream> {
    if let Some(bad) = rest.iter().find(|p| !matches!(p, Param::Number(_))) {
        return Err(syn::Error::new(param_span(bad), "a numeric export takes only numbers after the state"));
    }
    if rest.len() > MAX_USER_PARAMS {
        return Err(syn::Error::new(
            param_span(&rest[MAX_USER_PARAMS]),
            format!("a guest export takes at most {MAX_USER_PARAMS} numbers"),
        ));
    }
    let name = &func.sig.ident;
    let wrapper = format_ident!("__hotswap_export_{}", name);
    let export_name = name.to_string();
    let types: Vec<&Type> = rest
        .iter()
        .map(|p| match p {
            Param::Number(ty) | Param::Bytes(ty) | Param::State(ty) => *ty,
        })
        .collect();
    let idents: Vec<_> = (0..types.len()).map(|i| format_ident!("arg{}", i)).collect();
    let args: Vec<TokenStream> = idents.iter().map(|i| quote! { #i }).collect();
    let ret = match &func.sig.output {
        ReturnType::Default => quote! { () },
        ReturnType::Type(_, ty) => quote! { #ty },
    };
    let call = with_state(state, quote! { #name }, &args);
    Ok(quote! {
        #[doc(hidden)]
        #[unsafe(export_name = #export_name)]
        pub extern "C" fn #wrapper(#(#idents: #types),*) -> #ret {
            const _: () = {
                #(::hotswap_guest::__rt::assert_number::<#types>();)*
                ::hotswap_guest::__rt::assert_number::<#ret>();
            };
            ::hotswap_guest::__rt::init();
            #call
        }
    })
}

/// `f(state, args…)` inside the state cell, or `f(args…)` for a stateless export.
fn with_state(state: Option<&Type>, f: TokenStream, args: &[TokenStream]) -> TokenStream {
    match state {
        Some(ty) => quote! {
            <#ty as ::hotswap_guest::__rt::Guest>::cell().with(|state| #f(state, #(#args),*))
        },
        None => quote! { #f(#(#args),*) },
    }
}

fn param_span(p: &Param) -> proc_macro2::Span {
    match p {
        Param::State(ty) | Param::Bytes(ty) | Param::Number(ty) => ty.span(),
    }
}

fn is_number(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && NUMBERS.iter().any(|n| p.path.is_ident(n)))
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

fn is_bytes_type(ty: &Type) -> bool {
    let text = quote!(#ty).to_string().replace(' ', "");
    matches!(text.as_str(), "&[u8]" | "&str" | "Vec<u8>" | "String")
}
