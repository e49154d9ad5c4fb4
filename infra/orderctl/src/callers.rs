//! `orderctl callers`: which API callers may act for which merchants, and what they may do
//! (`order_core::callers`). A caller is its IAM principal (a role's or user's ARN; a role
//! session's ARN is taken as its role). A caller without a scope may do nothing; "all
//! merchants" is only ever an explicit `--all-merchants`. Every change is recorded, with
//! its STS identity (and `--operator` beside it), in the same write as the change:
//! `callers history` shows them.

use crate::cli::{CallersCommand, SetScopeArgs};
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output::{or_dash, print_json, time, Table};
use order_core::callers::{Merchants, Principal, Scope};
use order_core::store::CallerChange;

pub async fn run(context: &Context, command: CallersCommand) -> Result<Exit, CliError> {
    let store = context.store()?;
    match command {
        CallersCommand::List => {
            let callers = store.callers().await?;
            if context.json {
                print_json(&callers);
            } else {
                let mut table =
                    Table::new(&["CALLER", "MERCHANTS", "PERMISSIONS", "SET AT", "SET BY"]);
                for caller in &callers {
                    table.row(vec![
                        caller.principal.to_string(),
                        caller.scope.merchants.to_string(),
                        permissions(&caller.scope),
                        time(&caller.updated_at),
                        who(&caller.updated_by, caller.updated_by_label.as_deref()),
                    ]);
                }
                println!("{}", table.render());
                println!(
                    "{} caller(s) with a scope; any other caller may do nothing",
                    callers.len()
                );
            }
            Ok(Exit::Ok)
        }
        CallersCommand::Set(args) => {
            let principal = principal(&args.principal)?;
            let scope = scope(&args)?;
            let acting = context.acting().await?;
            let change = store
                .set_caller_scope(&principal, &scope, &acting.actor())
                .await?;
            show_change(context, &change);
            Ok(Exit::Ok)
        }
        CallersCommand::Remove { principal: arn } => {
            let principal = principal(&arn)?;
            let acting = context.acting().await?;
            match store
                .remove_caller_scope(&principal, &acting.actor())
                .await?
            {
                Some(change) => {
                    show_change(context, &change);
                    Ok(Exit::Ok)
                }
                None => Err(CliError::NotFound(format!(
                    "{principal} has no scope (it may already do nothing)"
                ))),
            }
        }
        CallersCommand::History { limit } => {
            let changes = store.caller_changes(limit).await?;
            if context.json {
                print_json(&changes);
            } else {
                let mut table = Table::new(&["AT", "CALLER", "CHANGE", "BY"]);
                for change in &changes {
                    table.row(vec![
                        time(&change.at),
                        change.principal.to_string(),
                        describe(change),
                        who(&change.who, change.label.as_deref()),
                    ]);
                }
                crate::output::print_listing(&table, changes.len(), limit, "change(s)");
            }
            Ok(Exit::Ok)
        }
    }
}

fn principal(arn: &str) -> Result<Principal, CliError> {
    Principal::parse(arn).map_err(|error| CliError::Usage(error.to_string()))
}

/// The scope `callers set` was given: `--all-merchants` or at least one `--merchant`, and
/// at least one permission.
fn scope(args: &SetScopeArgs) -> Result<Scope, CliError> {
    let merchants = match (args.all_merchants, args.merchants.is_empty()) {
        (true, true) => Merchants::All,
        (false, false) => Merchants::Only(args.merchants.iter().cloned().collect()),
        (true, false) => {
            return Err(CliError::Usage(
                "give --all-merchants or --merchant, not both".into(),
            ))
        }
        (false, true) => {
            return Err(CliError::Usage(
                "name the merchants with --merchant ID (repeat it), or grant --all-merchants explicitly".into(),
            ))
        }
    };
    if args.permissions.is_empty() {
        return Err(CliError::Usage(
            "name what the caller may do with --permissions (read, place, cancel)".into(),
        ));
    }
    Ok(Scope {
        merchants,
        permissions: args.permissions.iter().copied().collect(),
    })
}

fn permissions(scope: &Scope) -> String {
    let names: Vec<String> = scope.permissions.iter().map(ToString::to_string).collect();
    or_dash(Some(names.join(", ")))
}

fn who(identity: &str, label: Option<&str>) -> String {
    match label {
        Some(label) => format!("{identity} ({label})"),
        None => identity.to_owned(),
    }
}

/// A change for people: what it set, or that it removed the scope.
fn describe(change: &CallerChange) -> String {
    match &change.scope {
        Some(scope) => format!("set: {} for {}", permissions(scope), scope.merchants),
        None => "removed: may do nothing".to_owned(),
    }
}

fn show_change(context: &Context, change: &CallerChange) {
    if context.json {
        print_json(change);
    } else {
        println!("{}: {}", change.principal, describe(change));
        if let Some(before) = &change.before {
            println!("  before: {} for {}", permissions(before), before.merchants);
        }
        println!(
            "  recorded at {} by {}",
            time(&change.at),
            who(&change.who, change.label.as_deref())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use order_core::callers::Permission;

    fn args(all: bool, merchants: &[&str], permissions: &[Permission]) -> SetScopeArgs {
        SetScopeArgs {
            principal: "arn:aws:iam::123456789012:role/portal".into(),
            all_merchants: all,
            merchants: merchants.iter().map(|m| (*m).to_owned()).collect(),
            permissions: permissions.to_vec(),
        }
    }

    #[test]
    fn all_merchants_is_only_granted_when_asked_for_and_never_with_a_merchant_list() {
        let read = [Permission::Read];
        let all = scope(&args(true, &[], &read));
        assert!(
            matches!(
                all,
                Ok(Scope {
                    merchants: Merchants::All,
                    ..
                })
            ),
            "{all:?}"
        );
        for (all, merchants) in [(true, &["m-1"][..]), (false, &[][..])] {
            let refused = scope(&args(all, merchants, &read));
            assert!(matches!(refused, Err(CliError::Usage(_))), "{refused:?}");
        }
        let none = scope(&args(false, &["m-1"], &[]));
        assert!(matches!(none, Err(CliError::Usage(m)) if m.contains("--permissions")));
    }
}
