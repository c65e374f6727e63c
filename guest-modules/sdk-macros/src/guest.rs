use hotswap_abi::{GuestMetadata, BASE_ABI, LOADER_ABI};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{parse::Parser, Expr, ExprArray, Item, LitInt, LitStr};

pub fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: Item = syn::parse2(item)?;
    let (ident, generics) = match &item {
        Item::Struct(s) => (&s.ident, &s.generics),
        Item::Enum(e) => (&e.ident, &e.generics),
        other => {
            return Err(syn::Error::new_spanned(other, "#[guest] goes on the guest's state type (a struct or an enum)"))
        }
    };
    if !generics.params.is_empty() {
        return Err(syn::Error::new_spanned(generics, "a guest state type cannot be generic"));
    }
    let meta = parse_args(args)?;
    let precopy = meta.precopy.then(|| precopy_exports(ident));
    let text = meta.encode();
    let len = text.len();
    let bytes = syn::LitByteStr::new(text.as_bytes(), Span::call_site());
    Ok(quote! {
        #item

        const _: () = {
            #[unsafe(link_section = "hotswap.meta")]
            #[used]
            static __HOTSWAP_METADATA: [u8; #len] = *#bytes;

            static __HOTSWAP_STATE: ::hotswap_guest::__rt::StateCell<#ident> =
                ::hotswap_guest::__rt::StateCell::new();

            impl ::hotswap_guest::__rt::Guest for #ident {
                fn cell() -> &'static ::hotswap_guest::__rt::StateCell<Self> {
                    &__HOTSWAP_STATE
                }
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn hotswap_alloc(len: u32) -> u32 {
                ::hotswap_guest::__rt::alloc(len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn hotswap_free(ptr: u32, len: u32) {
                ::hotswap_guest::__rt::free(ptr, len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn hotswap_state_save(schema: u32) -> u64 {
                ::hotswap_guest::__rt::state_save::<#ident>(schema)
            }

            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn hotswap_state_load(ptr: u32, len: u32, schema: u32) -> i32 {
                // SAFETY: the host passes a buffer it obtained from hotswap_alloc and filled.
                unsafe { ::hotswap_guest::__rt::state_load::<#ident>(ptr, len, schema) }
            }

            #precopy
        };
    })
}

/// The ABI 1.1 pre-copy exports, for `#[guest(…, precopy)]`: the state type implements
/// `hotswap_guest::Precopy`.
fn precopy_exports(ident: &syn::Ident) -> TokenStream {
    quote! {
        #[unsafe(no_mangle)]
        pub extern "C" fn hotswap_delta_mark() {
            ::hotswap_guest::__rt::delta_mark::<#ident>()
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn hotswap_delta_save(schema: u32) -> u64 {
            ::hotswap_guest::__rt::delta_save::<#ident>(schema)
        }

        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn hotswap_delta_load(ptr: u32, len: u32, schema: u32) -> i32 {
            // SAFETY: the host passes a buffer it obtained from hotswap_alloc and filled.
            unsafe { ::hotswap_guest::__rt::delta_load::<#ident>(ptr, len, schema) }
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn hotswap_warm() {
            ::hotswap_guest::__rt::warm::<#ident>()
        }
    }
}

/// The attribute's `key = value` pairs, validated by the same parser the loader uses.
fn parse_args(args: TokenStream) -> syn::Result<GuestMetadata> {
    let mut name: Option<LitStr> = None;
    let mut version: Option<LitStr> = None;
    let mut schema: Option<LitInt> = None;
    let mut migrates_from = Vec::new();
    let mut migrates_to = Vec::new();
    let mut precopy = false;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("version") {
            version = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("schema") {
            schema = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("migrates_from") {
            migrates_from = parse_schema_list(meta.value()?.parse()?)?;
        } else if meta.path.is_ident("migrates_to") {
            migrates_to = parse_schema_list(meta.value()?.parse()?)?;
        } else if meta.path.is_ident("precopy") {
            precopy = true;
        } else {
            return Err(
                meta.error("unknown key: expected one of name, version, schema, migrates_from, migrates_to, precopy")
            );
        }
        Ok(())
    });
    parser.parse2(args)?;
    let missing = |key: &str| syn::Error::new(Span::call_site(), format!("#[guest] needs `{key} = ...`"));
    let name = name.ok_or_else(|| missing("name"))?;
    let version = version.ok_or_else(|| missing("version"))?;
    let schema = schema.ok_or_else(|| missing("schema"))?;
    let meta = GuestMetadata {
        // Pre-copy is ABI 1.1; every other guest declares 1.0, which 1.0 loaders accept too.
        abi: if precopy { LOADER_ABI } else { BASE_ABI },
        name: name.value(),
        version: version
            .value()
            .parse()
            .map_err(|e| syn::Error::new_spanned(&version, format!("not a SemVer version: {e}")))?,
        state_schema: schema.base10_parse()?,
        migrates_from,
        migrates_to,
        precopy,
    };
    // Round-trip through the loader's parser so both sides agree on what is valid.
    GuestMetadata::parse(meta.encode().as_bytes()).map_err(|e| syn::Error::new_spanned(&name, e.to_string()))?;
    Ok(meta)
}

fn parse_schema_list(list: ExprArray) -> syn::Result<Vec<u32>> {
    list.elems
        .iter()
        .map(|e| match e {
            Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(n), .. }) => n.base10_parse(),
            other => Err(syn::Error::new_spanned(other, "expected a schema number")),
        })
        .collect()
}
