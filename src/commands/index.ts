// The command map, given to oclif explicitly so that a bundle needs no directory scan.
import Allocator from './allocator.js'
import Proxy from './proxy.js'
import Members from './members.js'
import Rtt from './rtt.js'
import ConfigShow from './config/show.js'
import ConfigValidate from './config/validate.js'
import ConfigInit from './config/init.js'
import HelloWorldServer from './hello-world-server.js'
import ServiceInstall from './service/install.js'
import ServiceRemove from './service/remove.js'
import ServiceStatus from './service/status.js'
import Completion from './completion.js'
import Drain from './drain.js'
import Register from './register.js'
import Deregister from './deregister.js'
import Reload from './reload.js'
import Apps from './apps.js'
import Scale from './scale.js'

export const COMMANDS = {
  allocator: Allocator,
  proxy: Proxy,
  members: Members,
  rtt: Rtt,
  'config:show': ConfigShow,
  'config:validate': ConfigValidate,
  'config:init': ConfigInit,
  'hello-world-server': HelloWorldServer,
  'service:install': ServiceInstall,
  'service:remove': ServiceRemove,
  'service:status': ServiceStatus,
  completion: Completion,
  drain: Drain,
  register: Register,
  deregister: Deregister,
  reload: Reload,
  apps: Apps,
  scale: Scale
}
