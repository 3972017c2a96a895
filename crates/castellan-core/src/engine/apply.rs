//! A [`Change`] applied to [`Facts`]: what the facts become once the write is made. A dry run applies the change to
//! a copy of the facts deciding the affected users' holdings (see [`super::preview`]).

use super::facts::{
    Facts, GrantFact, MembershipFact, ModuleFact, ObjectFact, ObjectKey, RoleAssignmentFact, SubjectFact, UserFact,
};
use crate::change::{Change, GroupRecord, MembershipRecord, changed_groups};

impl Facts {
    /// Applies `change`. Facts the change names but these facts do not hold (a user outside the preview) are left
    /// out, as [`super::Index::build`] skips unknown references.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::UserCreated { pk, after } => {
                self.users.push(UserFact {
                    pk: *pk,
                    org: after.org,
                    is_active: after.is_active,
                    is_superuser: after.is_superuser,
                });
                for &group in &after.groups {
                    self.memberships.push(MembershipFact { user: *pk, group, expires_at: None, restriction: None });
                }
            }
            Change::UserUpdated { pk, after, .. } => self.update_user(*pk, after),
            Change::UserDeleted { pk, .. } => self.remove_subject(SubjectFact::User(*pk)),
            Change::GroupCreated { pk, after } => {
                self.groups.push((*pk, after.org, after.parent));
                self.grants.extend(group_grants(*pk, after));
            }
            Change::GroupUpdated { pk, before, after } => {
                if let Some(g) = self.groups.iter_mut().find(|g| g.0 == *pk) {
                    g.2 = after.parent;
                }
                for grant in group_grants(*pk, before) {
                    if let Some(i) = self.grants.iter().position(|g| *g == grant) {
                        self.grants.swap_remove(i);
                    }
                }
                self.grants.extend(group_grants(*pk, after));
            }
            Change::GroupDeleted { deleted, .. } => {
                for &group in deleted {
                    self.memberships.retain(|m| m.group != group);
                    self.remove_subject(SubjectFact::Group(group));
                }
            }
            Change::MembersAssigned { group, members } | Change::MembersUnassigned { group, members } => {
                for member in members {
                    self.set_membership(member.user, *group, member.after.as_ref());
                }
            }
            Change::MembershipRestricted { group, user, after, .. } => self.set_membership(*user, *group, after.as_ref()),
            Change::RoleCreated { pk, after } => self.roles.push((*pk, after.org)),
            Change::RoleDeleted { pk, .. } => self.remove_subject(SubjectFact::Role(*pk)),
            Change::RoleAssigned { pk, subjects, expires_at, .. } => {
                for &subject in subjects {
                    self.role_assignments.retain(|a| !(a.role == *pk && a.subject == subject));
                    self.role_assignments.push(RoleAssignmentFact { role: *pk, subject, expires_at: *expires_at });
                }
            }
            Change::RoleUnassigned { pk, subjects, .. } => {
                self.role_assignments.retain(|a| !(a.role == *pk && subjects.contains(&a.subject)));
            }
            Change::ModulePermissionsSet { subject, module, after, .. } => {
                self.grants.retain(|g| !(g.subject == *subject && g.module == *module && g.object.is_none()));
                for action in after {
                    self.grants.push(GrantFact {
                        subject: *subject,
                        module: module.clone(),
                        action: action.clone(),
                        object: None,
                        expires_at: None,
                    });
                }
            }
            Change::GrantsAssigned { subject, object, after, expires_at } => {
                for (module, action) in after.iter().filter_map(|p| p.split_once('.')) {
                    self.remove_grant(*subject, module, action, object.as_ref());
                    self.grants.push(GrantFact {
                        subject: *subject,
                        module: module.to_string(),
                        action: action.to_string(),
                        object: object.clone(),
                        expires_at: *expires_at,
                    });
                }
            }
            Change::GrantsUnassigned { subject, object, before } => {
                for (module, action) in before.iter().filter_map(|p| p.split_once('.')) {
                    self.remove_grant(*subject, module, action, object.as_ref());
                }
            }
            Change::ObjectRegistered { after } => {
                let key: ObjectKey = (after.model.clone(), after.object_pk.clone());
                self.objects.retain(|o| o.key != key);
                self.objects.push(ObjectFact { key, parent: after.parent.clone(), org: after.org });
            }
            Change::ObjectDeleted { before, .. } => {
                let key: ObjectKey = (before.model.clone(), before.object_pk.clone());
                self.objects.retain(|o| o.key != key);
                self.grants.retain(|g| g.object.as_ref() != Some(&key));
                for child in self.objects.iter_mut().filter(|o| o.parent.as_ref() == Some(&key)) {
                    child.parent = None;
                }
            }
            Change::ModuleCreated { id, after } | Change::ModuleUpdated { id, after, .. } => {
                self.modules.retain(|m| m.id != *id);
                self.modules.push(ModuleFact {
                    id: id.clone(),
                    is_active: after.is_active,
                    custom_actions: after.actions.clone(),
                });
            }
            Change::ModuleDeleted { id, .. } => {
                self.modules.retain(|m| m.id != *id);
                self.grants.retain(|g| g.module != *id);
            }
            Change::CatalogCreated { .. } | Change::CatalogUpdated { .. } | Change::CatalogDeleted { .. } => {
                self.apply_object_groups(change)
            }
            // Nothing else decides a holding: names and descriptions, organisations, policies, tokens, expiries
            // (checks compare the clock themselves) and audit-only events.
            _ => {}
        }
    }

    fn update_user(&mut self, pk: i64, after: &crate::change::UserFields) {
        if let Some(user) = self.users.iter_mut().find(|u| u.pk == pk) {
            let flag = |key: &str, current: bool| after.get(key).and_then(|v| v.as_bool()).unwrap_or(current);
            user.is_active = flag("is_active", user.is_active);
            user.is_superuser = flag("is_superuser", user.is_superuser);
            user.org = after.get("org").and_then(|v| v.as_i64()).unwrap_or(user.org);
        }
        let Some(groups) = changed_groups(after) else { return };
        self.memberships.retain(|m| m.user != pk || groups.contains(&m.group));
        for group in groups {
            if !self.memberships.iter().any(|m| m.user == pk && m.group == group) {
                self.memberships.push(MembershipFact { user: pk, group, expires_at: None, restriction: None });
            }
        }
    }

    fn set_membership(&mut self, user: i64, group: i64, after: Option<&MembershipRecord>) {
        self.memberships.retain(|m| !(m.user == user && m.group == group));
        if let Some(m) = after {
            let restriction = m.restricted.then(|| m.nodes.clone());
            self.memberships.push(MembershipFact { user, group, expires_at: m.expires_at, restriction });
        }
    }

    /// A catalog or channel group's grants: one `access` grant per item to its group, taken or given. One taken grant
    /// removes one copy, so the same grant given another way stays.
    fn apply_object_groups(&mut self, change: &Change) {
        for (group, module, (item, given)) in change.object_group_grants() {
            // The first group of a kind registers its module in the same write.
            if given && !self.modules.iter().any(|m| m.id == module) {
                self.modules.push(ModuleFact { id: module.to_string(), is_active: true, custom_actions: Vec::new() });
            }
            let grant = GrantFact {
                subject: SubjectFact::Group(group),
                module: module.to_string(),
                action: "access".to_string(),
                object: Some((module.to_string(), item.to_string())),
                expires_at: None,
            };
            if given {
                self.grants.push(grant);
            } else if let Some(i) = self.grants.iter().position(|g| *g == grant) {
                self.grants.swap_remove(i);
            }
        }
    }

    fn remove_grant(&mut self, subject: SubjectFact, module: &str, action: &str, object: Option<&ObjectKey>) {
        self.grants
            .retain(|g| !(g.subject == subject && g.module == module && g.action == action && g.object.as_ref() == object));
    }

    /// Removes a user, group or role with everything it holds and every assignment of it.
    fn remove_subject(&mut self, subject: SubjectFact) {
        match subject {
            SubjectFact::User(pk) => {
                self.users.retain(|u| u.pk != pk);
                self.memberships.retain(|m| m.user != pk);
            }
            SubjectFact::Group(pk) => self.groups.retain(|g| g.0 != pk),
            SubjectFact::Role(pk) => {
                self.roles.retain(|r| r.0 != pk);
                self.role_assignments.retain(|a| a.role != pk);
            }
        }
        self.role_assignments.retain(|a| a.subject != subject);
        self.grants.retain(|g| g.subject != subject);
    }
}

/// The global grants a group's own permissions stand for.
fn group_grants(pk: i64, group: &GroupRecord) -> Vec<GrantFact> {
    group
        .permissions
        .iter()
        .flat_map(|(module, actions)| actions.iter().map(move |action| (module, action)))
        .map(|(module, action)| GrantFact {
            subject: SubjectFact::Group(pk),
            module: module.clone(),
            action: action.clone(),
            object: None,
            expires_at: None,
        })
        .collect()
}
