// A thread's members, as the MLS group has them: who is in it, a safety
// number to compare with each, removing a member and adding a colleague.

import { useState } from 'preact/hooks';

import { Confirm } from '../components/Confirm';
import { DirectorySearch } from './DirectorySearch';
import type { MemberView, Messenger } from './model';
import { SafetyNumberDialog } from './SafetyNumberDialog';

export function MembersPanel({ messenger, threadId }: { messenger: Messenger; threadId: string }) {
  const members = messenger.members(threadId);
  const [removing, setRemoving] = useState<MemberView | null>(null);
  const [checking, setChecking] = useState<MemberView | null>(null);
  const exclude = new Set([messenger.me.userId, ...members.map((member) => member.userId)]);

  return (
    <section aria-labelledby="members-heading" class="members">
      <h2 id="members-heading">Members</h2>
      <ul class="people-list">
        {members.map((member) => (
          <li key={member.userId}>
            <span id={`member-${member.userId}`}>
              <span class="person-name">{member.displayName}</span>
              {member.me && ' (you)'}
              <span class="muted">
                {' '}
                · {member.devices} {member.devices === 1 ? 'device' : 'devices'}
              </span>
            </span>
            {!member.me && (
              <span class="buttons">
                <button
                  type="button"
                  class="secondary small"
                  aria-describedby={`member-${member.userId}`}
                  onClick={() => setChecking(member)}
                >
                  Safety number
                </button>
                <button
                  type="button"
                  class="secondary outline small"
                  aria-describedby={`member-${member.userId}`}
                  onClick={() => setRemoving(member)}
                >
                  Remove
                </button>
              </span>
            )}
          </li>
        ))}
      </ul>
      <DirectorySearch
        messenger={messenger}
        id="add-member-search"
        label="Add a colleague"
        exclude={exclude}
        onAdd={(person) => messenger.addMember(threadId, person.userId)}
      />
      {removing !== null && (
        <Confirm
          title={`Remove ${removing.displayName} from this thread?`}
          confirmLabel="Remove"
          onClose={() => setRemoving(null)}
          onConfirm={() => messenger.removeMember(threadId, removing.userId)}
        >
          <p>
            Their devices will not receive this thread’s new messages. What was already delivered to them stays on their
            devices. Any member can add them again.
          </p>
        </Confirm>
      )}
      {checking !== null && (
        <SafetyNumberDialog messenger={messenger} member={checking} onClose={() => setChecking(null)} />
      )}
    </section>
  );
}
