//! The blocks that tell the plan how prior state maps onto the declarations (Terraform's
//! `import`, `moved` and `removed`): `import "bucket/logs" id="shop-logs"`,
//! `moved from="service/api" to="service/orders-api"`, `removed "bucket/old-logs"`. They are
//! checked against the declarations in `crate::validate` and read by `crate::plan`.

use super::*;

const IMPORT_USAGE: &str = "import \"bucket/logs\" id=\"shop-logs\"";
const MOVED_USAGE: &str = "moved from=\"service/api\" to=\"service/orders-api\"";
const REMOVED_USAGE: &str = "removed \"bucket/old-logs\"";

/// A declared kind's address written as a string (`"bucket/logs"`).
fn address(v: Val<'_>, usage: &str, diags: &mut Vec<Diagnostic>) -> Option<Spanned<Address>> {
    let text = string(v, usage, diags)?;
    let declared: Vec<Kind> = Kind::ALL.into_iter().filter(|k| k.is_declared()).collect();
    let address = parse_address(&text, &declared, diags)?;
    Some(Spanned::new(address, text.span))
}

pub(crate) fn decode_import(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Import> {
    if !shape(node, 1, 1, &["id"], IMPORT_USAGE, diags) {
        return None;
    }
    let target = address(arg(node, 0)?, IMPORT_USAGE, diags);
    let id = string(
        required_prop(node, "id", IMPORT_USAGE, diags)?,
        IMPORT_USAGE,
        diags,
    )?;
    if id.value.trim().is_empty() {
        diags.push(
            Diagnostic::error("invalid-value", "an import's `id` is empty")
                .with_label(id.span, "names nothing")
                .with_help("give the driver's id of the object: `id=\"Deployment/shop/api\"` (Kubernetes), a bucket name, a DB instance identifier"),
        );
        return None;
    }
    Some(Import {
        address: target?,
        id,
    })
}

pub(crate) fn decode_moved(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Moved> {
    if !shape(node, 0, 0, &["from", "to"], MOVED_USAGE, diags) {
        return None;
    }
    let from = required_prop(node, "from", MOVED_USAGE, diags)
        .and_then(|v| address(v, MOVED_USAGE, diags));
    let to =
        required_prop(node, "to", MOVED_USAGE, diags).and_then(|v| address(v, MOVED_USAGE, diags));
    Some(Moved {
        from: from?,
        to: to?,
        span: node.name.span,
    })
}

pub(crate) fn decode_removed(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Removed> {
    if !shape(node, 1, 1, &[], REMOVED_USAGE, diags) {
        return None;
    }
    Some(Removed {
        address: address(arg(node, 0)?, REMOVED_USAGE, diags)?,
    })
}
