// Forgetting this browser: its device key is deleted and the session
// ended, so that it can no longer act as one of the user's devices.

import * as api from '../api';
import * as device from '../device';
import { Confirm } from './Confirm';

interface Props {
  onClose: () => void;
  onForgotten: () => void;
  /**
   * Erases what else this browser keeps for the user first (a clinician's
   * stored messages): useless without the key, and not to be left behind.
   */
  eraseMessages?: () => Promise<void>;
}

export function ForgetDialog({ onClose, onForgotten, eraseMessages }: Props) {
  return (
    <Confirm
      title="Forget this browser?"
      confirmLabel="Forget this browser"
      onClose={onClose}
      onConfirm={async () => {
        await eraseMessages?.();
        await api.signOut(null);
        await device.forgetBrowser();
        onForgotten();
      }}
    >
      <p>
        This deletes this browser’s key{eraseMessages === undefined ? '' : ' and the messages stored in it'} and signs
        out. To use Curbside here again you will need a new enrollment code. The device stays listed on the server until
        an administrator removes it.
      </p>
    </Confirm>
  );
}
