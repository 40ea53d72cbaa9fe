// The wire types the console reads and sends, as `curbside-proto` and the
// server's handlers define them. Binary fields are unpadded base64url
// strings (see `b64.ts`).

export type Role = 'clinician' | 'admin' | 'auditor';
export type UserStatus = 'active' | 'deactivated';
export type Outcome = 'allowed' | 'denied';

export const ROLES: readonly Role[] = ['clinician', 'admin', 'auditor'];

export interface User {
  user_id: string;
  display_name: string;
  role: Role;
  department: string;
  licence_number: string | null;
  status: UserStatus;
  created_at_ms: number;
  updated_at_ms: number;
}

export interface NewUser {
  display_name: string;
  role: Role;
  department: string;
  licence_number?: string;
}

export interface UserUpdate {
  display_name?: string;
  role?: Role;
  department?: string;
  licence_number?: string;
}

export interface UserPage {
  users: User[];
  /** The next page's `after`; absent on the last page. */
  next?: string | null;
}

export interface Device {
  device_id: string;
  user_id: string;
  device_name: string;
  public_key: string;
  created_at_ms: number;
}

export interface DeviceList {
  devices: Device[];
}

export interface EnrollmentCodeIssued {
  code: string;
  code_id: string;
  user_id: string;
  expires_at_ms: number;
  revoked: number;
}

export interface OutstandingCode {
  code_id: string;
  created_at_ms: number;
  expires_at_ms: number;
}

export interface OutstandingCodes {
  codes: OutstandingCode[];
}

export interface Session {
  session_id: string;
  device_id: string;
  device_name: string;
  created_at_ms: number;
  last_seen_at_ms: number;
  expires_at_ms: number;
  client_address: string | null;
}

export interface SessionList {
  sessions: Session[];
}

export interface EnrollRequest {
  code: string;
  device_name: string;
  public_key: string;
  display_name?: string;
}

export interface Enrolled {
  user: User;
  device: Device;
  server_id: string;
}

export interface Challenge {
  challenge_id: string;
  nonce: string;
  server_id: string;
  expires_at_ms: number;
}

export interface LoggedIn {
  token: string;
  session_id: string;
  expires_at_ms: number;
}

export interface Whoami {
  user: User;
  device: Device;
  session_id: string;
}

export interface AuditKey {
  algorithm: string;
  public_key: string;
  server_id: string;
}

export interface AuditEntry {
  seq: number;
  time_ms: number;
  actor_user: string | null;
  actor_device: string | null;
  client_addr: string | null;
  request_id: string;
  action: string;
  resource_type: string;
  resource_id: string | null;
  outcome: Outcome;
  reason: string;
  evidence?: string;
}

export interface RecordedEntry {
  entry: AuditEntry;
  entry_hash: string;
}

export interface AuditPage {
  entries: RecordedEntry[];
  next_after: number | null;
}

export interface OverviewDay {
  day: string;
  messages: number;
  audit_entries: number;
}

export interface Overview {
  version: string;
  certificate_fingerprint: string;
  users_active: number;
  users_deactivated: number;
  devices_active: number;
  sessions_active: number;
  days: OverviewDay[];
  audit_size: number;
  checkpoint_size: number | null;
  checkpoint_time_ms: number | null;
}

export interface PolicyVersion {
  version: number;
  text: string;
  published_at_ms: number;
  published_by: string;
}

export interface PolicyState {
  current: PolicyVersion | null;
  accepted_version: number | null;
}

export interface PolicyVersions {
  versions: PolicyVersion[];
}

export interface PolicyPending {
  version: number | null;
  users: User[];
}

export interface RetentionPolicy {
  /** The maximum age of thread content in seconds; null when off. */
  max_age_s: number | null;
  updated_at_ms: number | null;
  updated_by: string | null;
}

export type HoldScope = 'thread' | 'user';

export interface Hold {
  hold_id: string;
  scope: HoldScope;
  /** The held thread's id, or the held user's. */
  target_id: string;
  reason: string;
  placed_by: string;
  placed_at_ms: number;
  lifted_by: string | null;
  lifted_at_ms: number | null;
}

export interface HoldList {
  holds: Hold[];
}

export interface NewHold {
  scope: HoldScope;
  target_id: string;
  reason: string;
}

// ---- Roles, shifts and escalation (`curbside-proto`'s `clinical`) ----
// A role here is an on-call duty ("Cardiology on-call"), not a user's
// `Role` above.

export interface ClinicalRole {
  role_id: string;
  name: string;
  department: string;
  /** Who holds it at the answer's `now_ms`, if anyone. */
  holder: Shift | null;
  /** In start order: the last one over, the current ones, the coming ones. */
  shifts: Shift[];
}

export interface ClinicalRoleList {
  /** By name. */
  roles: ClinicalRole[];
  /** The server's time of the answer, which each `holder` is for. */
  now_ms: number;
}

export interface NewClinicalRole {
  name: string;
  department: string;
}

export interface Shift {
  shift_id: string;
  role_id: string;
  user_id: string;
  display_name: string;
  starts_at_ms: number;
  ends_at_ms: number;
  /** The IANA zone it was planned in ("Europe/Paris"). */
  timezone: string;
}

export interface NewShift {
  user_id: string;
  starts_at_ms: number;
  ends_at_ms: number;
  timezone: string;
}

/** Whom an escalation reaches: whoever holds a role then, or one person. */
export type Backup = { kind: 'role'; role_id: string } | { kind: 'user'; user_id: string };

export interface EscalationPolicy {
  /** The recipients' department; `*` for every department without its own. */
  department: string;
  realert_after_s: number;
  escalate_after_s: number;
  backup: Backup;
}

export interface EscalationPolicies {
  /** By department. */
  policies: EscalationPolicy[];
}
